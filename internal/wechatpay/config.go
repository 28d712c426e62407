package wechatpay

import (
	"crypto/rsa"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults of the zero Config fields.
const (
	DefaultBaseURL      = "https://api.mch.weixin.qq.com"
	DefaultTimeout      = 5 * time.Second
	DefaultNotifyWindow = 5 * time.Minute
	// DefaultNoncesMax bounds the nonce memory. WeChat Pay sends a few
	// notifications per order; 100,000 live nonces over a 5-minute window
	// is 333 notifications a second, and about 10 MB.
	DefaultNoncesMax = 100_000
	// APIv3KeyBytes is the length of the APIv3 key (AES-256).
	APIv3KeyBytes = 32
	// MinRSABits is the smallest RSA key accepted.
	MinRSABits = 2048
	// MaxBodyBytes bounds a notification body and an answer body.
	MaxBodyBytes = 64 << 10
)

// Config is the merchant's WeChat Pay account and the client's limits.
// Zero limit fields mean the documented defaults. Secrets (MerchantKey,
// APIv3Key) never appear in String, GoString or LogValue.
type Config struct {
	MchID          string          // merchant id, "mchid"
	AppID          string          // the mini-program's appid
	MerchantSerial string          // serial number of the merchant certificate, sent as serial_no
	MerchantKey    *rsa.PrivateKey // merchant API private key (signs requests and paySign)
	// PlatformKeys are WeChat Pay's public keys by serial or id (a
	// platform certificate's serial, or a "PUB_KEY_ID_..." platform public
	// key id): answers and notifications are verified with the one their
	// Wechatpay-Serial names. Several may be configured during a rotation.
	PlatformKeys map[string]*rsa.PublicKey
	APIv3Key     []byte // exactly 32 bytes; decrypts notification resources

	BaseURL string // default DefaultBaseURL; no trailing slash needed
	// Timeout bounds each call, on top of the caller's context. Default
	// DefaultTimeout.
	Timeout time.Duration
	// NotifyWindow is how far the Wechatpay-Timestamp of a notification or
	// of an answer may be from now, and how long past its timestamp a
	// notification's nonce is remembered. Default DefaultNotifyWindow.
	NotifyWindow time.Duration
	// NoncesMax bounds the live nonces remembered. Default DefaultNoncesMax.
	NoncesMax int
	// HTTPClient makes the calls. Default: a client of its own with a
	// cloned http.DefaultTransport.
	HTTPClient *http.Client
	// UserAgent is sent with every call. Default "surge-wechatpay/1".
	UserAgent string
}

const defaultUserAgent = "surge-wechatpay/1"

// Validate returns nil, or one error wrapping ErrInvalidConfig that names
// every missing or malformed setting, e.g. "wechatpay: invalid config:
// mch_id is empty; api_v3_key must be 32 bytes, got 31".
func (c Config) Validate() error {
	p := c.problems(true)
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(p, "; "))
}

// problems lists what is wrong; merchant=false checks only what a
// notification Verifier needs.
func (c Config) problems(merchant bool) []string {
	var p []string
	if merchant {
		if c.MchID == "" {
			p = append(p, "mch_id is empty")
		}
		if c.AppID == "" {
			p = append(p, "app_id is empty")
		}
		if c.MerchantSerial == "" {
			p = append(p, "merchant_serial is empty")
		}
		if c.MerchantKey == nil {
			p = append(p, "merchant_key is missing")
		} else if bits := c.MerchantKey.N.BitLen(); bits < MinRSABits {
			p = append(p, fmt.Sprintf("merchant_key must be RSA of at least %d bits, got %d", MinRSABits, bits))
		}
		if c.BaseURL != "" {
			if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				p = append(p, fmt.Sprintf("base_url %q is not an http(s) URL", c.BaseURL))
			}
		}
		if c.Timeout < 0 {
			p = append(p, fmt.Sprintf("timeout must not be negative, got %s", c.Timeout))
		}
	}
	if len(c.PlatformKeys) == 0 {
		p = append(p, "platform_keys is empty")
	}
	for _, id := range slices.Sorted(mapKeys(c.PlatformKeys)) {
		k := c.PlatformKeys[id]
		switch {
		case id == "":
			p = append(p, "platform_keys has an empty serial")
		case k == nil:
			p = append(p, fmt.Sprintf("platform key %q is nil", id))
		case k.N.BitLen() < MinRSABits:
			p = append(p, fmt.Sprintf("platform key %q must be RSA of at least %d bits, got %d", id, MinRSABits, k.N.BitLen()))
		}
	}
	if len(c.APIv3Key) != APIv3KeyBytes {
		p = append(p, fmt.Sprintf("api_v3_key must be %d bytes, got %d", APIv3KeyBytes, len(c.APIv3Key)))
	}
	if c.NotifyWindow < 0 {
		p = append(p, fmt.Sprintf("notify_window must not be negative, got %s", c.NotifyWindow))
	}
	if c.NoncesMax < 0 {
		p = append(p, fmt.Sprintf("nonces_max must not be negative, got %d", c.NoncesMax))
	}
	return p
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// withDefaults returns a copy with the zero limit fields filled in.
func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.NotifyWindow == 0 {
		c.NotifyWindow = DefaultNotifyWindow
	}
	if c.NoncesMax == 0 {
		c.NoncesMax = DefaultNoncesMax
	}
	if c.UserAgent == "" {
		c.UserAgent = defaultUserAgent
	}
	return c
}

func redactedKey(k *rsa.PrivateKey) string {
	if k == nil {
		return "<none>"
	}
	return fmt.Sprintf("<redacted RSA-%d>", k.N.BitLen())
}

func redactedBytes(b []byte) string {
	if len(b) == 0 {
		return "<none>"
	}
	return fmt.Sprintf("<redacted %d bytes>", len(b))
}

func (c Config) platformKeyIDs() []string {
	return slices.Sorted(mapKeys(c.PlatformKeys))
}

// String describes the config with its secrets redacted.
func (c Config) String() string {
	return fmt.Sprintf("wechatpay.Config{mch_id=%s app_id=%s merchant_serial=%s merchant_key=%s platform_keys=%v api_v3_key=%s base_url=%s timeout=%s notify_window=%s nonces_max=%d}",
		c.MchID, c.AppID, c.MerchantSerial, redactedKey(c.MerchantKey), c.platformKeyIDs(),
		redactedBytes(c.APIv3Key), c.BaseURL, c.Timeout, c.NotifyWindow, c.NoncesMax)
}

// GoString is String, so that %#v does not print the secrets either.
func (c Config) GoString() string { return c.String() }

// LogValue makes slog print the config with its secrets redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("mch_id", c.MchID),
		slog.String("app_id", c.AppID),
		slog.String("merchant_serial", c.MerchantSerial),
		slog.String("merchant_key", redactedKey(c.MerchantKey)),
		slog.Any("platform_keys", c.platformKeyIDs()),
		slog.String("api_v3_key", redactedBytes(c.APIv3Key)),
		slog.String("base_url", c.BaseURL),
		slog.Duration("timeout", c.Timeout),
		slog.Duration("notify_window", c.NotifyWindow),
		slog.Int("nonces_max", c.NoncesMax),
	)
}

var (
	_ fmt.Stringer   = Config{}
	_ fmt.GoStringer = Config{}
	_ slog.LogValuer = Config{}
)
