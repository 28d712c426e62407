package main

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/surge-retail/surge/config"
	"github.com/surge-retail/surge/internal/wechatpay"
)

// Files of payment.keys_dir (the layout wechatpaytest.WriteKeys writes, less
// the platform's private key, which only a test server has).
const (
	keysMchID          = "mchid.txt"
	keysAppID          = "appid.txt"
	keysMerchantSerial = "merchant_serial.txt"
	keysMerchantKey    = "merchant_private_key.pem"
	keysPlatformKey    = "platform_public_key.pem"
	keysPlatformKeyID  = "platform_public_key_id.txt"
	keysAPIv3Key       = "apiv3_key.txt"
)

// wechatPayOf builds the WeChat Pay client of the payment settings (nil for
// the dev provider). Its error names every setting or file that is missing
// or bad, and never a secret's value.
func wechatPayOf(p config.Payment) (*wechatpay.Client, error) {
	if p.Provider != "wechat" {
		return nil, nil
	}
	var errs []error
	// fromDir returns the setting, else the trimmed text of its file in
	// KeysDir.
	fromDir := func(val, file string) string {
		if val != "" || p.KeysDir == "" {
			return val
		}
		b, err := os.ReadFile(filepath.Join(p.KeysDir, file))
		if err != nil {
			errs = append(errs, fmt.Errorf("payment.keys_dir: %w", err))
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	path := func(val, file string) string {
		if val != "" || p.KeysDir == "" {
			return val
		}
		return filepath.Join(p.KeysDir, file)
	}
	cfg := wechatpay.Config{
		MchID:          fromDir(p.MchID, keysMchID),
		AppID:          fromDir(p.AppID, keysAppID),
		MerchantSerial: fromDir(p.MerchantSerial, keysMerchantSerial),
		APIv3Key:       []byte(fromDir(p.APIv3Key, keysAPIv3Key)),
		BaseURL:        p.BaseURL,
		Timeout:        p.Timeout,
	}
	if f := path(p.MerchantKeyFile, keysMerchantKey); f != "" {
		b, err := os.ReadFile(f)
		if err == nil {
			cfg.MerchantKey, err = wechatpay.LoadPrivateKey(b)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("payment.merchant_key_file %s: %w", f, err))
		}
	}
	var platform *rsa.PublicKey
	var serial string
	if f := path(p.PlatformKeyFile, keysPlatformKey); f != "" {
		b, err := os.ReadFile(f)
		if err == nil {
			platform, serial, err = wechatpay.LoadPublicKey(b)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("payment.platform_key_file %s: %w", f, err))
		}
	}
	if id := fromDir(p.PlatformKeyID, keysPlatformKeyID); id != "" {
		serial = id
	}
	if platform != nil && serial != "" {
		cfg.PlatformKeys = map[string]*rsa.PublicKey{serial: platform}
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: the wechat payment provider: %w", config.ErrInvalid, errors.Join(errs...))
	}
	return wechatpay.New(cfg)
}

// testKeys reports whether the keys directory is one of `surge
// wechatpay-test-keys`: only a test has WeChat Pay's platform private key.
func testKeys(p config.Payment) bool {
	if p.KeysDir == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(p.KeysDir, "platform_private_key.pem"))
	return err == nil
}
