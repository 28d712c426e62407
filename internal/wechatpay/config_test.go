package wechatpay_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/surge-retail/surge/internal/wechatpay"
	"github.com/surge-retail/surge/internal/wechatpay/wechatpaytest"
)

func TestValidateNamesEverySetting(t *testing.T) {
	err := wechatpay.Config{APIv3Key: make([]byte, 31), BaseURL: "ftp://x", Timeout: -1, NoncesMax: -1}.Validate()
	if !errors.Is(err, wechatpay.ErrInvalidConfig) {
		t.Fatalf("Validate = %v; want ErrInvalidConfig", err)
	}
	for _, want := range []string{
		"mch_id is empty", "app_id is empty", "merchant_serial is empty", "merchant_key is missing",
		"platform_keys is empty", "api_v3_key must be 32 bytes, got 31", `base_url "ftp://x"`,
		"timeout must not be negative", "nonces_max must not be negative",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %q; want it to name %q", err, want)
		}
	}
	if !strings.HasPrefix(err.Error(), "wechatpay: invalid config: mch_id is empty; ") {
		t.Errorf("Validate = %q", err)
	}

	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	keys := defaultKeys(t)
	cfg := keys.ConfigFor("")
	cfg.MerchantKey = small
	cfg.PlatformKeys["PUB_KEY_ID_nil"] = nil
	err = cfg.Validate()
	for _, want := range []string{"merchant_key must be RSA of at least 2048 bits, got 1024", `platform key "PUB_KEY_ID_nil" is nil`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v; want it to name %q", err, want)
		}
	}
	if _, err := wechatpay.New(cfg); !errors.Is(err, wechatpay.ErrInvalidConfig) {
		t.Errorf("New(bad config) = %v; want ErrInvalidConfig", err)
	}
	if err := keys.ConfigFor("").Validate(); err != nil {
		t.Errorf("Validate(good) = %v", err)
	}
}

func TestNewVerifierNeedsOnlyItsSettings(t *testing.T) {
	keys := defaultKeys(t)
	if _, err := wechatpay.NewVerifier(wechatpay.Config{PlatformKeys: keys.ConfigFor("").PlatformKeys, APIv3Key: keys.APIv3Key}); err != nil {
		t.Fatalf("NewVerifier(platform keys and APIv3 key only) = %v", err)
	}
	_, err := wechatpay.NewVerifier(wechatpay.Config{})
	if !errors.Is(err, wechatpay.ErrInvalidConfig) || !strings.Contains(err.Error(), "platform_keys is empty; api_v3_key must be 32 bytes, got 0") {
		t.Fatalf("NewVerifier(empty) = %v", err)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	keys, err := wechatpaytest.GenerateKeys() // fresh secrets, so that they are recognisable
	if err != nil {
		t.Fatal(err)
	}
	cfg := keys.ConfigFor("http://127.0.0.1:1")
	c, err := wechatpay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{
		string(keys.APIv3Key),
		fmt.Sprint(keys.APIv3Key), // as a byte slice
		keys.MerchantKey.D.String(),
		keys.MerchantKey.Primes[0].String(),
		keys.PlatformKey.D.String(),
	}
	var logged bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logged, nil))
	logger.Info("config", "wechatpay", cfg)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "wechatpay", cfg, "client", c, "keys", keys)
	outputs := map[string]string{
		"Sprint":       fmt.Sprint(cfg),
		"%v":           fmt.Sprintf("%v", cfg),
		"%+v":          fmt.Sprintf("%+v", cfg),
		"%#v":          fmt.Sprintf("%#v", cfg),
		"%v pointer":   fmt.Sprintf("%v", &cfg),
		"client %v":    fmt.Sprintf("%v", c),
		"client %+v":   fmt.Sprintf("%+v", c),
		"client %#v":   fmt.Sprintf("%#v", c),
		"verifier %+v": fmt.Sprintf("%+v", c.Verifier()),
		"keys %+v":     fmt.Sprintf("%+v", keys),
		"slog":         logged.String(),
	}
	for name, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s prints a secret: %s", name, out)
			}
		}
	}
	for _, want := range []string{keys.MchID, keys.PlatformKeyID, "<redacted RSA-2048>", "<redacted 32 bytes>"} {
		if !strings.Contains(outputs["Sprint"], want) || !strings.Contains(outputs["slog"], want) {
			t.Errorf("String/LogValue lack %q: %s / %s", want, outputs["Sprint"], outputs["slog"])
		}
	}
}
