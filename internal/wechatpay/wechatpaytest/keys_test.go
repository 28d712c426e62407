package wechatpaytest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/wechatpay"
	"github.com/surge-retail/surge/internal/wechatpay/wechatpaytest"
)

func TestWriteLoadKeys(t *testing.T) {
	keys, err := wechatpaytest.DefaultKeys()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "keys")
	if err := wechatpaytest.WriteKeys(dir, keys); err != nil {
		t.Fatalf("WriteKeys = %v", err)
	}
	for _, name := range []string{
		wechatpaytest.FileMerchantPrivateKey, wechatpaytest.FileMerchantSerial, wechatpaytest.FilePlatformPublicKey,
		wechatpaytest.FilePlatformPublicKeyID, wechatpaytest.FilePlatformPrivateKey, wechatpaytest.FileAPIv3Key,
		wechatpaytest.FileMchID, wechatpaytest.FileAppID,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		secret := strings.Contains(name, "private") || name == wechatpaytest.FileAPIv3Key
		if secret && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v; want 0600", name, fi.Mode().Perm())
		}
	}
	got, err := wechatpaytest.LoadKeys(dir)
	if err != nil {
		t.Fatalf("LoadKeys = %v", err)
	}
	if got.MchID != keys.MchID || got.AppID != keys.AppID || got.MerchantSerial != keys.MerchantSerial ||
		got.PlatformKeyID != keys.PlatformKeyID || string(got.APIv3Key) != string(keys.APIv3Key) ||
		!got.MerchantKey.Equal(keys.MerchantKey) || !got.PlatformKey.Equal(keys.PlatformKey) {
		t.Fatalf("LoadKeys = %v; want %v", got, keys)
	}
	if !strings.HasPrefix(got.PlatformKeyID, "PUB_KEY_ID_0114") || len(got.APIv3Key) != 32 {
		t.Fatalf("keys %v", got)
	}

	// the loaded keys serve, and sign notifications the merchant verifies
	srv := wechatpaytest.New(t, wechatpaytest.Options{Keys: got})
	v, err := wechatpay.NewVerifier(keys.ConfigFor(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	h, body := got.PaymentNotification(wechatpay.Transaction{OutTradeNo: "R000001", Amount: wechatpay.TransactionAmount{Total: 1}})
	if _, err := v.Verify(wechatpay.HeadersFromHTTP(h), body, time.Now()); err != nil {
		t.Fatalf("Verify(notification signed with loaded keys) = %v", err)
	}

	// a public key file loads with wechatpay.LoadPublicKey, as surge serve would
	pemBytes, _ := os.ReadFile(filepath.Join(dir, wechatpaytest.FilePlatformPublicKey))
	if pub, _, err := wechatpay.LoadPublicKey(pemBytes); err != nil || !pub.Equal(keys.PlatformPublicKey()) {
		t.Fatalf("LoadPublicKey(%s) = %v", wechatpaytest.FilePlatformPublicKey, err)
	}

	// missing files are named, all of them
	os.Remove(filepath.Join(dir, wechatpaytest.FileMchID))
	os.Remove(filepath.Join(dir, wechatpaytest.FilePlatformPrivateKey))
	_, err = wechatpaytest.LoadKeys(dir)
	if err == nil || !strings.Contains(err.Error(), wechatpaytest.FileMchID) || !strings.Contains(err.Error(), wechatpaytest.FilePlatformPrivateKey) {
		t.Fatalf("LoadKeys(missing files) = %v; want both named", err)
	}
}
