package wechatpay_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/wechatpay"
)

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestLoadPrivateKey(t *testing.T) {
	key := defaultKeys(t).MerchantKey
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string][]byte{
		"PKCS#8": pemOf("PRIVATE KEY", pkcs8),
		"PKCS#1": pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)),
	} {
		got, err := wechatpay.LoadPrivateKey(p)
		if err != nil || !got.Equal(key) {
			t.Errorf("LoadPrivateKey(%s) = %v; want the key", name, err)
		}
	}

	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	for name, p := range map[string][]byte{
		"not PEM":    []byte("hello"),
		"RSA-1024":   pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small)),
		"EC":         pemOf("PRIVATE KEY", ecDER),
		"wrong type": pemOf("CERTIFICATE", []byte{1, 2, 3}),
		"garbage":    pemOf("PRIVATE KEY", []byte{1, 2, 3}),
	} {
		if _, err := wechatpay.LoadPrivateKey(p); !errors.Is(err, wechatpay.ErrBadKey) {
			t.Errorf("LoadPrivateKey(%s) = %v; want ErrBadKey", name, err)
		}
	}
}

func TestLoadPublicKey(t *testing.T) {
	key := defaultKeys(t).PlatformKey
	pkix, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, serial, err := wechatpay.LoadPublicKey(pemOf("PUBLIC KEY", pkix))
	if err != nil || !pub.Equal(&key.PublicKey) || serial != "" {
		t.Fatalf("LoadPublicKey(PKIX) = %v, %q, %v", pub != nil, serial, err)
	}

	serialNo, _ := new(big.Int).SetString("5157F09EFDC096DE15EBE81A47057A7232F1B8E1", 16)
	der := selfSigned(t, key, serialNo)
	pub, serial, err = wechatpay.LoadPublicKey(pemOf("CERTIFICATE", der))
	if err != nil || !pub.Equal(&key.PublicKey) || serial != "5157F09EFDC096DE15EBE81A47057A7232F1B8E1" {
		t.Fatalf("LoadPublicKey(certificate) = %q, %v; want serial 5157F09E...", serial, err)
	}

	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallDER, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	_, _, err = wechatpay.LoadPublicKey(pemOf("PUBLIC KEY", smallDER))
	if !errors.Is(err, wechatpay.ErrBadKey) || !strings.Contains(err.Error(), "RSA-1024") {
		t.Fatalf("LoadPublicKey(RSA-1024) = %v; want ErrBadKey naming RSA-1024", err)
	}
	if _, _, err := wechatpay.LoadPublicKey([]byte("x")); !errors.Is(err, wechatpay.ErrBadKey) {
		t.Fatalf("LoadPublicKey(not PEM) = %v; want ErrBadKey", err)
	}
}

func selfSigned(t *testing.T, key *rsa.PrivateKey, serial *big.Int) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "Tenpay.com Root CA"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
