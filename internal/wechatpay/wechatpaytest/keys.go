package wechatpaytest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/surge-retail/surge/internal/wechatpay"
)

// Key file names of WriteKeys and LoadKeys.
const (
	FileMerchantPrivateKey  = "merchant_private_key.pem"
	FileMerchantSerial      = "merchant_serial.txt"
	FilePlatformPublicKey   = "platform_public_key.pem"
	FilePlatformPublicKeyID = "platform_public_key_id.txt"
	FilePlatformPrivateKey  = "platform_private_key.pem"
	FileAPIv3Key            = "apiv3_key.txt"
	FileMchID               = "mchid.txt"
	FileAppID               = "appid.txt"
)

// Keys are a fake merchant account and WeChat Pay's platform key. Treat
// them as read-only: the default Keys are shared by every Server of the
// process.
type Keys struct {
	MchID          string
	AppID          string
	MerchantSerial string
	MerchantKey    *rsa.PrivateKey
	PlatformKeyID  string          // "PUB_KEY_ID_...", sent as Wechatpay-Serial
	PlatformKey    *rsa.PrivateKey // signs answers and notifications
	APIv3Key       []byte          // 32 bytes
}

// GenerateKeys makes fresh keys: two RSA-2048 pairs, random serials and
// ids, and a random 32-character APIv3 key.
func GenerateKeys() (*Keys, error) {
	mk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("wechatpaytest: merchant key: %w", err)
	}
	pk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("wechatpaytest: platform key: %w", err)
	}
	return &Keys{
		MchID:          "19" + randomDigits(8),
		AppID:          "wx" + strings.ToLower(randomHex(8)),
		MerchantSerial: randomHex(20),
		MerchantKey:    mk,
		PlatformKeyID:  "PUB_KEY_ID_0114" + randomDigits(24),
		PlatformKey:    pk,
		APIv3Key:       []byte(wechatpay.NewNonce()),
	}, nil
}

var (
	sharedKeys = sync.OnceValues(GenerateKeys)
	// strangerKey is a platform-sized key nobody configured: the wrong key
	// of SignWithWrongKey and WithWrongKey.
	strangerKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })
)

// DefaultKeys returns the keys generated once per process that servers use
// unless given their own.
func DefaultKeys() (*Keys, error) { return sharedKeys() }

func mustStrangerKey() *rsa.PrivateKey {
	k, err := strangerKey()
	if err != nil {
		panic("wechatpaytest: cannot generate an RSA key: " + err.Error())
	}
	return k
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%X", b)
}

func randomDigits(n int) string {
	var sb strings.Builder
	for range n {
		d, _ := rand.Int(rand.Reader, big.NewInt(10))
		sb.WriteByte(byte('0' + d.Int64()))
	}
	return sb.String()
}

// MerchantPublicKey is the public half of MerchantKey.
func (k *Keys) MerchantPublicKey() *rsa.PublicKey { return &k.MerchantKey.PublicKey }

// PlatformPublicKey is the public half of PlatformKey.
func (k *Keys) PlatformPublicKey() *rsa.PublicKey { return &k.PlatformKey.PublicKey }

// ConfigFor returns the merchant's wechatpay.Config with baseURL.
func (k *Keys) ConfigFor(baseURL string) wechatpay.Config {
	return wechatpay.Config{
		MchID:          k.MchID,
		AppID:          k.AppID,
		MerchantSerial: k.MerchantSerial,
		MerchantKey:    k.MerchantKey,
		PlatformKeys:   map[string]*rsa.PublicKey{k.PlatformKeyID: k.PlatformPublicKey()},
		APIv3Key:       append([]byte(nil), k.APIv3Key...),
		BaseURL:        baseURL,
	}
}

// String describes the keys without the secrets.
func (k *Keys) String() string {
	return fmt.Sprintf("wechatpaytest.Keys{mch_id=%s app_id=%s merchant_serial=%s platform_key_id=%s <secrets redacted>}",
		k.MchID, k.AppID, k.MerchantSerial, k.PlatformKeyID)
}

// GoString is String.
func (k *Keys) GoString() string { return k.String() }

// WriteKeys writes k into dir (created with mode 0700 if missing), one
// file each; see the package doc for the names.
func WriteKeys(dir string, k *Keys) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("wechatpaytest: cannot write keys: %w", err)
	}
	mk, err := x509.MarshalPKCS8PrivateKey(k.MerchantKey)
	if err != nil {
		return fmt.Errorf("wechatpaytest: merchant key: %w", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(k.PlatformKey)
	if err != nil {
		return fmt.Errorf("wechatpaytest: platform key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(k.PlatformPublicKey())
	if err != nil {
		return fmt.Errorf("wechatpaytest: platform public key: %w", err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{FileMerchantPrivateKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mk}), 0o600},
		{FileMerchantSerial, []byte(k.MerchantSerial + "\n"), 0o644},
		{FilePlatformPublicKey, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644},
		{FilePlatformPublicKeyID, []byte(k.PlatformKeyID + "\n"), 0o644},
		{FilePlatformPrivateKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600},
		{FileAPIv3Key, append(append([]byte(nil), k.APIv3Key...), '\n'), 0o600},
		{FileMchID, []byte(k.MchID + "\n"), 0o644},
		{FileAppID, []byte(k.AppID + "\n"), 0o644},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("wechatpaytest: cannot write keys: %w", err)
		}
	}
	return nil
}

// LoadKeys reads the keys WriteKeys wrote into dir; its error names every
// file missing or bad.
func LoadKeys(dir string) (*Keys, error) {
	var k Keys
	var errs []error
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		return b
	}
	text := func(name string) string { return strings.TrimRight(string(read(name)), " \t\r\n") }
	k.MchID = text(FileMchID)
	k.AppID = text(FileAppID)
	k.MerchantSerial = text(FileMerchantSerial)
	k.PlatformKeyID = text(FilePlatformPublicKeyID)
	k.APIv3Key = []byte(text(FileAPIv3Key))
	if b := read(FileMerchantPrivateKey); b != nil {
		var err error
		if k.MerchantKey, err = wechatpay.LoadPrivateKey(b); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", FileMerchantPrivateKey, err))
		}
	}
	if b := read(FilePlatformPrivateKey); b != nil {
		var err error
		if k.PlatformKey, err = wechatpay.LoadPrivateKey(b); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", FilePlatformPrivateKey, err))
		}
	}
	if b := read(FilePlatformPublicKey); b != nil {
		pub, _, err := wechatpay.LoadPublicKey(b)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", FilePlatformPublicKey, err))
		case k.PlatformKey != nil && !pub.Equal(k.PlatformPublicKey()):
			errs = append(errs, fmt.Errorf("%s: not the public half of %s", FilePlatformPublicKey, FilePlatformPrivateKey))
		}
	}
	if len(errs) == 0 {
		for _, f := range [...]struct{ name, value string }{
			{FileMchID, k.MchID}, {FileAppID, k.AppID}, {FileMerchantSerial, k.MerchantSerial}, {FilePlatformPublicKeyID, k.PlatformKeyID},
		} {
			if f.value == "" {
				errs = append(errs, fmt.Errorf("%s is empty", f.name))
			}
		}
		if len(k.APIv3Key) != wechatpay.APIv3KeyBytes {
			errs = append(errs, fmt.Errorf("%s must hold %d bytes, got %d", FileAPIv3Key, wechatpay.APIv3KeyBytes, len(k.APIv3Key)))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("wechatpaytest: cannot load keys from %s: %w", dir, errors.Join(errs...))
	}
	return &k, nil
}
