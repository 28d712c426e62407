package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid marks every validation or parse error of this package.
var ErrInvalid = errors.New("config: invalid")

// Config is everything `surge serve` can be told. It holds what the user
// set: a zero field means "the component's default", which the component
// that uses the setting owns and documents on its Options (the gateway,
// the engine, the risk hook, the inventory backends). Config restates none
// of those defaults. The few defaults below (see Default) are of settings
// that only `surge serve` itself uses, or whose zero has a meaning of its
// own.
type Config struct {
	// Addr is the listen address. Default ":8080".
	Addr string `key:"addr"`
	// Data is the directory of the Pebble stores and the admin token file.
	// Default "./surge-data".
	Data string `key:"data"`
	// Backend is the inventory backend: "pebble" (default), "memory" or
	// "redis".
	Backend string `key:"backend"`
	// Redis is the Redis address (host:port) for --backend redis, or a
	// comma-separated list of seeds: any nodes of a Redis Cluster. Zero:
	// the redis inventory's default (redisinv.AddrDefault).
	Redis string `key:"redis"`
	// RedisUsername and RedisPassword authenticate to Redis (ACL user and
	// password, or only a password for requirepass). Default none. The
	// password is never printed or logged.
	RedisUsername string `key:"redis_username"`
	RedisPassword string `key:"redis_password"`
	// Orders says where orders are kept: "pebble" (or zero: with the
	// engine's records, embedded under Data, or in Redis with --backend
	// redis) or "mysql://USER:PASS@HOST:PORT/DB" (MySQL, MariaDB or TiDB;
	// "mysql://USER@HOST:PORT/DB" without a password). The password is
	// never printed or logged.
	Orders string `key:"orders"`
	// NoOrderWriter, with --backend redis, leaves writing the orders of
	// the outbox to `surge orders` processes (or other nodes): this node
	// still hands every paid order to the outbox. `surge serve
	// --order-writer=false` sets it.
	NoOrderWriter bool `key:"no_order_writer"`
	// Demo loads the demo catalog, a flash sale and a group deal at start.
	Demo bool `key:"demo"`
	// AdminToken is the admin bearer token; "" generates one into
	// Data/admin.token.
	AdminToken string `key:"admin_token"`
	// FeedSecret signs the POS/ERP inventory feed; "" generates one into
	// Data/feed.secret.
	FeedSecret string `key:"feed_secret"`
	// SessionSecret signs session tokens; "" generates one into
	// Data/session.secret (so tokens survive a restart).
	SessionSecret string `key:"session_secret"`
	// SessionTTL is how long a session token lives. Zero: the gateway's
	// default.
	SessionTTL time.Duration `key:"session_ttl"`
	// BodyMaxBytes bounds request bodies. Zero: the gateway's default.
	BodyMaxBytes int `key:"body_max_bytes"`
	// TrustedProxies lists CIDRs whose X-Forwarded-For is believed. Unset:
	// the gateway's default (loopback).
	TrustedProxies []string `key:"trusted_proxies"`
	// SweepInterval is how often expired holds are released. Zero: the
	// engine's default.
	SweepInterval time.Duration `key:"sweep_interval"`
	// ReservationRetention is how long a released reservation (cancelled,
	// expired or refunded) is kept after its hold deadline before the
	// sweeper forgets it; paid ones are kept. Zero: the engine's default
	// (engine.ReservationRetentionDefault, 24h). Forever (spelled
	// "forever") keeps them all.
	ReservationRetention time.Duration `key:"reservation_retention"`
	// DiskEntriesMax bounds the released reservations the pebble backend
	// remembers in memory as "on disk" (16 to 32 bytes each) before its
	// reserves of new ids read the disk instead. Zero: the inventory's
	// default (inventory.DiskEntriesMaxDefault, about two million); -1:
	// none kept.
	DiskEntriesMax int `key:"disk_entries_max"`
	// RegistrantsPerSaleMax bounds the registrants (预约) of one flash sale
	// and its draw_quantity. Zero: the engine's default
	// (engine.RegistrantsPerSaleMaxDefault, 100000).
	RegistrantsPerSaleMax int64 `key:"registrants_per_sale_max"`
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `key:"log_level"`
	// IdempotencyNewKeysPerSecond bounds the new Idempotency-Keys one
	// user makes the records keep in one second (past it: 429). Zero: the
	// engine's default (engine.NewKeysPerSecondDefault, 10); -1: no bound.
	IdempotencyNewKeysPerSecond int `key:"idempotency_new_keys_per_second"`

	Login     Login     `key:"login"`
	Payment   Payment   `key:"payment"`
	Risk      Risk      `key:"risk"`
	Admission Admission `key:"admission"`
	Sales     Sales     `key:"sales"`
	Circuit   Circuit   `key:"circuit"`
}

// Circuit configures the circuit breakers in front of the backends (the
// inventory store and the engine's records). Zero fields: the engine's
// defaults.
type Circuit struct {
	// Failures is how many backend failures in a row open a circuit
	// (engine default 5); -1 turns the circuits off.
	Failures int `key:"failures"`
	// OpenFor is how long an open circuit refuses at once before one
	// probe goes through (engine default 2s).
	OpenFor time.Duration `key:"open_for"`
}

// Forever, as Config.ReservationRetention, keeps every released
// reservation. In a file, the environment or a flag it is spelled
// "forever". It is negative, as the engine's spelling of the same.
const Forever time.Duration = -1

// forever is how Forever is written.
const forever = "forever"

// Off, as Sales.LotteryWindow, turns the lottery window off even where the
// engine's default has one. It is spelled "off".
const Off time.Duration = -2

// off is how Off is written (only where a setting's tag allows it).
const off = "off"

// Login configures how POST /api/v1/session turns a wx.login code into a
// user. Zero fields: the gateway's defaults.
type Login struct {
	// Provider is "dev" (the code is the openid; the gateway's default) or
	// "wechat".
	Provider string `key:"provider"`
	// WeChatBaseURL is code2session's base URL. Zero: the gateway's
	// default (WeChat's API host).
	WeChatBaseURL string `key:"wechat_base_url"`
	// AppID and AppSecret are the mini-program's credentials (wechat only).
	AppID     string `key:"app_id"`
	AppSecret string `key:"app_secret"`
	// Timeout bounds one code2session call. Zero: the gateway's default.
	Timeout time.Duration `key:"timeout"`
}

// Payment configures who says a reservation is paid (API.md, "Payments").
// Zero fields: the defaults.
type Payment struct {
	// Provider is "dev" (the default: the buyer's own session pays, and
	// surge serve says so loudly) or "wechat" (only a verified WeChat Pay
	// notification pays).
	Provider string `key:"provider"`
	// KeysDir, when set, is a directory of WeChat Pay merchant files read
	// for every setting below left empty: mchid.txt, appid.txt,
	// merchant_serial.txt, merchant_private_key.pem,
	// platform_public_key.pem, platform_public_key_id.txt, apiv3_key.txt.
	KeysDir string `key:"keys_dir"`
	// MchID and AppID are the merchant and the mini-program.
	MchID string `key:"mch_id"`
	AppID string `key:"app_id"`
	// MerchantSerial is the serial number of the merchant certificate;
	// MerchantKeyFile the merchant's RSA private key (PEM).
	MerchantSerial  string `key:"merchant_serial"`
	MerchantKeyFile string `key:"merchant_key_file"`
	// PlatformKeyFile is WeChat Pay's platform public key (PEM, or its
	// certificate), PlatformKeyID its id or serial (Wechatpay-Serial).
	PlatformKeyFile string `key:"platform_key_file"`
	PlatformKeyID   string `key:"platform_key_id"`
	// APIv3Key is the merchant's APIv3 key (32 characters); a secret.
	APIv3Key string `key:"api_v3_key"`
	// BaseURL is WeChat Pay's API base. Zero: https://api.mch.weixin.qq.com.
	BaseURL string `key:"base_url"`
	// NotifyURL is /api/v1/payments/wechat/notify as WeChat Pay reaches
	// it (https in production). Required with provider wechat.
	NotifyURL string `key:"notify_url"`
	// Timeout bounds one call to WeChat Pay. Zero: 5s.
	Timeout time.Duration `key:"timeout"`
}

// validate names every missing or malformed payment setting at
// once (a merchant's configuration is fixed in one go, not one error at a
// time).
func (p Payment) validate() error {
	var probs []string
	switch p.Provider {
	case "", "dev":
		return nil
	case "wechat":
	default:
		return fmt.Errorf("%w: payment.provider: want dev or wechat, got %q", ErrInvalid, p.Provider)
	}
	if p.KeysDir == "" {
		for _, f := range []struct{ key, val string }{
			{"payment.mch_id", p.MchID}, {"payment.app_id", p.AppID},
			{"payment.merchant_serial", p.MerchantSerial}, {"payment.merchant_key_file", p.MerchantKeyFile},
			{"payment.platform_key_file", p.PlatformKeyFile}, {"payment.platform_key_id", p.PlatformKeyID},
			{"payment.api_v3_key", p.APIv3Key},
		} {
			if f.val == "" {
				probs = append(probs, f.key+" is missing")
			}
		}
	}
	if p.APIv3Key != "" && len(p.APIv3Key) != 32 {
		probs = append(probs, fmt.Sprintf("payment.api_v3_key must be 32 characters, got %d", len(p.APIv3Key)))
	}
	for _, u := range []struct{ key, val string }{{"payment.base_url", p.BaseURL}, {"payment.notify_url", p.NotifyURL}} {
		if u.val == "" {
			continue
		}
		if pu, err := url.Parse(u.val); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			probs = append(probs, fmt.Sprintf("%s: want an http(s) URL, got %q", u.key, u.val))
		}
	}
	if p.NotifyURL == "" {
		probs = append(probs, "payment.notify_url is missing (where WeChat Pay sends notifications: this server's /api/v1/payments/wechat/notify)")
	}
	if p.Timeout < 0 || p.Timeout > time.Minute {
		probs = append(probs, fmt.Sprintf("payment.timeout: want 0 (the default) or up to 1m, got %s", p.Timeout))
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: the wechat payment provider: %s", ErrInvalid, strings.Join(probs, "; "))
	}
	return nil
}

// Risk configures the built-in risk hook chain. Zero fields: the risk
// hook's defaults (engine.RiskConfig), except the rates, whose zero means
// no limit.
type Risk struct {
	// UserRate is reserving attempts per second per user; 0 means no
	// limit. Default 5. UserBurst zero: the risk hook's default.
	UserRate  float64 `key:"user_rate"`
	UserBurst int     `key:"user_burst"`
	// IPRate is reserving attempts per second per client IP; 0 means no
	// limit. Default 50. IPBurst zero: the risk hook's default.
	IPRate  float64 `key:"ip_rate"`
	IPBurst int     `key:"ip_burst"`
	// Blocklist holds user ids, IPs or device ids that are always denied.
	Blocklist []string `key:"blocklist"`
	// RequireDevice denies reserving attempts without X-Device-Id.
	RequireDevice bool `key:"require_device"`
	// WebhookURL, when set, asks an outside risk service per attempt.
	WebhookURL string `key:"webhook_url"`
	// WebhookTimeout bounds one webhook call. Zero: the risk hook's
	// default.
	WebhookTimeout time.Duration `key:"webhook_timeout"`
	// WebhookFailOpen allows the attempt when the webhook cannot answer.
	// Default false (fail closed).
	WebhookFailOpen bool `key:"webhook_fail_open"`
	// AccountsPerDevice: a device more than this many accounts used
	// within LinkWindow raises the signal device_accounts (weight 100:
	// denied); 0 means not counted. Default 5.
	AccountsPerDevice int `key:"accounts_per_device"`
	// DevicesPerIP: an address more than this many devices used within
	// LinkWindow raises the signal ip_devices (weight 60: denied with
	// another signal); 0 means not counted. Default 30 (generous: carrier
	// NAT puts many shoppers behind one address).
	DevicesPerIP int `key:"devices_per_ip"`
	// LinkWindow is the window of the two counts. Zero: the risk hook's
	// default (10m).
	LinkWindow time.Duration `key:"link_window"`
	// DeviceAccountsFree: accounts sharing a device that weigh nothing (a
	// family phone); from there device_accounts grows a step an account
	// up to its full weight past AccountsPerDevice. Zero: the risk hook's
	// default (2); -1: none free.
	DeviceAccountsFree int `key:"device_accounts_free"`
	// IPDevicesFree: devices on an address that weigh nothing (a
	// household); from there ip_devices grows up to DevicesPerIP. Zero:
	// the risk hook's default (10); -1: none free.
	IPDevicesFree int `key:"ip_devices_free"`
	// LinkLoginsOff counts links only at reserving attempts, not at
	// logins.
	LinkLoginsOff bool `key:"link_logins_off"`
	// PageTokenOff leaves the page-view token (X-Surge-Page-Token)
	// unjudged: no signal.
	PageTokenOff bool `key:"page_token_off"`
	// PageTokenTTL: an older page token is expired. Zero: the risk hook's
	// default (10m).
	PageTokenTTL time.Duration `key:"page_token_ttl"`
	// PageTokenMinAge: a page token used sooner after its page view is too
	// young. Zero: the risk hook's default (300ms).
	PageTokenMinAge time.Duration `key:"page_token_min_age"`
	// PageTokenUses: a page token used more often (or by a second account)
	// is reused. Zero: the risk hook's default (5).
	PageTokenUses int `key:"page_token_uses"`
	// MinAccountAge is the minimum account age (since its first session)
	// for sales that set none. Zero: none.
	MinAccountAge time.Duration `key:"min_account_age"`
	// ScoreDeny denies an attempt whose signals weigh this much. Zero: the
	// risk hook's default (100).
	ScoreDeny int `key:"score_deny"`
	// Weights of the signals. Zero: the risk hook's default; negative: no
	// weight (the signal still reaches the webhook).
	Weights RiskWeights `key:"weights"`
}

// RiskWeights are the weights of the risk score's signals
// (engine.RiskWeights).
type RiskWeights struct {
	DeviceAccounts   int `key:"device_accounts"`
	IPDevices        int `key:"ip_devices"`
	PageTokenMissing int `key:"page_token_missing"`
	// FlashPageTokenMissing weighs a flash reserve without a page token
	// (engine default 100: denied); PageTokenMissing the other routes.
	FlashPageTokenMissing int `key:"flash_page_token_missing"`
	PageTokenInvalid      int `key:"page_token_invalid"`
	PageTokenExpired      int `key:"page_token_expired"`
	PageTokenYoung        int `key:"page_token_young"`
	PageTokenReused       int `key:"page_token_reused"`
	AccountYoung          int `key:"account_young"`
	// FarmShape weighs a shared device on a crowded address (engine
	// default 50).
	FarmShape int `key:"farm_shape"`
}

// Admission bounds in-flight work per route class (law 9). Zero fields: the
// gateway's defaults.
type Admission struct {
	// ReadsMax bounds in-flight reads (pages, GETs).
	ReadsMax int `key:"reads_max"`
	// WritesMax bounds in-flight reserving writes (flash reserve, team
	// open and join, checkout): the most the adaptive limit admits.
	WritesMax int `key:"writes_max"`
	// WritesMin is the floor of the adaptive limit of the reserving
	// writes (at most WritesMax).
	WritesMin int `key:"writes_min"`
	// WritesFixed turns the adaptive limit off: the writes' bound stays
	// at WritesMax.
	WritesFixed bool `key:"writes_fixed"`
	// AdminMax bounds in-flight admin and feed calls.
	AdminMax int `key:"admin_max"`
	// SessionsMax bounds in-flight logins.
	SessionsMax int `key:"sessions_max"`
	// PaysMax bounds in-flight pays and cancels (capacity reserves cannot
	// take).
	PaysMax int `key:"pays_max"`
	// SaleAdmitFactor admits at most this many times a sale's remaining
	// units into its reserve path at once.
	SaleAdmitFactor int `key:"sale_admit_factor"`
}

// Sales configures flash sales server-wide. Zero fields: the engine's
// defaults.
type Sales struct {
	// LotteryWindow is the lottery window of the sales created without
	// lottery_window_ms (and longer than it): up to 10s. Default 2s
	// (Default); zero: the engine's default (engine.LotteryWindowDefault,
	// none); Off (spelled "off") none.
	LotteryWindow time.Duration `key:"lottery_window" spell:"off"`
	// LotteryQueueMax bounds the reserves waiting in one sale's lottery
	// on one node; past it they are answered 429. Zero: the engine's
	// default (engine.LotteryQueueMaxDefault).
	LotteryQueueMax int `key:"lottery_queue_max"`
}

// Default returns the only defaults config owns: those of the settings
// that `surge serve` uses itself (addr, data, backend, log level), and the
// risk rates, whose zero means "no limit" in the risk hook too, so the
// limits Surge ships with are written here, once. Every other field is
// zero: the component's default.
func Default() Config {
	return Config{
		Addr:     ":8080",
		Data:     "./surge-data",
		Backend:  "pebble",
		LogLevel: "info",
		// A flash sale opens with a 2 s lottery window unless it says
		// otherwise (README, "Fair opening"): measured with a crowd that
		// waits at the countdown, it takes the opening millisecond's edge
		// from a bot that the risk signals cannot see.
		Sales: Sales{LotteryWindow: 2 * time.Second},
		Risk: Risk{
			UserRate:          5,
			IPRate:            50,
			AccountsPerDevice: 5,
			DevicesPerIP:      30,
		},
	}
}

// Sources are the layers Load reads, lowest precedence first after the
// defaults.
type Sources struct {
	// File is a JSON config file path; "" for none.
	File string
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// Flags holds settings given on the command line, by key
	// ("addr", "login.provider"); values as typed by the user.
	Flags map[string]string
}

// Load builds a Config: Default, then the file, then the environment, then
// flags; then Validate. Settings nobody set stay zero: the component's
// default.
func Load(src Sources) (Config, error) {
	c := Default()
	fields := fieldsOf(&c)
	if src.File != "" {
		data, err := os.ReadFile(src.File)
		if err != nil {
			return Config{}, fmt.Errorf("cannot read config file: %w", err)
		}
		flat, err := flattenJSON(data)
		if err != nil {
			return Config{}, fmt.Errorf("%w: config file %s: %v", ErrInvalid, src.File, err)
		}
		for _, k := range sortedKeys(flat) {
			f, ok := fields[k]
			if !ok {
				return Config{}, fmt.Errorf("%w: config file %s: unknown setting %q", ErrInvalid, src.File, k)
			}
			if err := f.set(flat[k]); err != nil {
				return Config{}, fmt.Errorf("%w: config file %s: %s: %v", ErrInvalid, src.File, k, err)
			}
		}
	}
	getenv := src.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	for _, k := range sortedKeys(fields) {
		name := EnvName(k)
		if v := getenv(name); v != "" {
			if err := fields[k].set(v); err != nil {
				return Config{}, fmt.Errorf("%w: environment %s: %v", ErrInvalid, name, err)
			}
		}
	}
	for _, k := range sortedKeys(src.Flags) {
		f, ok := fields[k]
		if !ok {
			return Config{}, fmt.Errorf("%w: unknown flag setting %q", ErrInvalid, k)
		}
		if err := f.set(src.Flags[k]); err != nil {
			return Config{}, fmt.Errorf("%w: flag --%s: %v", ErrInvalid, k, err)
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// EnvName is the environment variable of a setting key.
func EnvName(key string) string {
	return "SURGE_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys lists every setting key, sorted.
func Keys() []string {
	c := Default()
	return sortedKeys(fieldsOf(&c))
}

// Validate checks every setting and names the first bad one.
func (c Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return bad("addr", "want host:port, got %q", c.Addr)
	}
	switch c.Backend {
	case "pebble", "memory", "redis":
	default:
		return bad("backend", "want pebble, memory or redis, got %q", c.Backend)
	}
	if c.Backend == "pebble" && c.Data == "" {
		return bad("data", "the pebble backend needs a data directory")
	}
	if c.Backend == "redis" && c.Redis != "" {
		for _, seed := range strings.Split(c.Redis, ",") {
			if _, _, err := net.SplitHostPort(seed); err != nil {
				return bad("redis", "want host:port, or a comma-separated list of a cluster's nodes, got %q", c.Redis)
			}
		}
	}
	if c.Orders != "" && c.Orders != "pebble" && !strings.HasPrefix(c.Orders, "mysql://") {
		return bad("orders", "want pebble or mysql://USER:PASS@HOST:PORT/DB")
	}
	if c.SessionTTL != 0 && (c.SessionTTL < time.Minute || c.SessionTTL > 30*24*time.Hour) {
		return bad("session_ttl", "want 0 (the default) or between 1m and 720h, got %s", c.SessionTTL)
	}
	if c.BodyMaxBytes != 0 && (c.BodyMaxBytes < 1<<10 || c.BodyMaxBytes > 16<<20) {
		return bad("body_max_bytes", "want 0 (the default) or between 1024 and 16777216, got %d", c.BodyMaxBytes)
	}
	for _, cidr := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			return bad("trusted_proxies", "%q is not a CIDR", cidr)
		}
	}
	if c.SweepInterval != 0 && (c.SweepInterval < 10*time.Millisecond || c.SweepInterval > time.Minute) {
		return bad("sweep_interval", "want 0 (the default) or between 10ms and 1m, got %s", c.SweepInterval)
	}
	if n := c.DiskEntriesMax; n != 0 && n != -1 && (n < 1024 || n > 1<<30) {
		return bad("disk_entries_max", "want 0 (the default), -1 (none) or between 1024 and 1073741824, got %d", n)
	}
	if n := c.RegistrantsPerSaleMax; n != 0 && (n < 1 || n > 10_000_000) {
		return bad("registrants_per_sale_max", "want 0 (the default) or between 1 and 10000000, got %d", n)
	}
	if r := c.ReservationRetention; r != 0 && r != Forever && (r < time.Hour || r > 90*24*time.Hour) {
		return bad("reservation_retention", "want 0 (the default), %q (keep all) or between 1h and 2160h, got %s", forever, r)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("log_level", "want debug, info, warn or error, got %q", c.LogLevel)
	}
	switch c.Login.Provider {
	case "", "dev":
	case "wechat":
		if c.Login.AppID == "" || c.Login.AppSecret == "" {
			return bad("login.app_id", "the wechat provider needs app_id and app_secret")
		}
		if base := c.Login.WeChatBaseURL; base != "" {
			if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return bad("login.wechat_base_url", "want an http(s) URL, got %q", base)
			}
		}
	default:
		return bad("login.provider", "want dev or wechat, got %q", c.Login.Provider)
	}
	if c.Login.Timeout < 0 || c.Login.Timeout > time.Minute {
		return bad("login.timeout", "want 0 (the default) or up to 1m, got %s", c.Login.Timeout)
	}
	if err := c.Payment.validate(); err != nil {
		return err
	}
	if c.Risk.UserRate < 0 || c.Risk.IPRate < 0 {
		return bad("risk.user_rate", "rates may not be negative")
	}
	if c.Risk.AccountsPerDevice < 0 || c.Risk.DevicesPerIP < 0 {
		return bad("risk.accounts_per_device", "counts may not be negative (0 turns the signal off)")
	}
	if v := c.Risk.DeviceAccountsFree; v < -1 || v > 1000 {
		return bad("risk.device_accounts_free", "want 0 (the default), -1 (none free) or a count up to 1000, got %d", v)
	}
	if v := c.Risk.IPDevicesFree; v < -1 || v > 100_000 {
		return bad("risk.ip_devices_free", "want 0 (the default), -1 (none free) or a count up to 100000, got %d", v)
	}
	if c.Risk.LinkWindow < 0 || c.Risk.LinkWindow > 24*time.Hour {
		return bad("risk.link_window", "want 0 (the default) or up to 24h, got %s", c.Risk.LinkWindow)
	}
	if c.Risk.UserBurst < 0 || c.Risk.IPBurst < 0 {
		return bad("risk.user_burst", "a burst may not be negative (0 is the default)")
	}
	if c.Risk.WebhookURL != "" {
		if u, err := url.Parse(c.Risk.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("risk.webhook_url", "want an http(s) URL, got %q", c.Risk.WebhookURL)
		}
	}
	if c.Risk.WebhookTimeout < 0 || c.Risk.WebhookTimeout > 5*time.Second {
		return bad("risk.webhook_timeout", "want 0 (the default) or up to 5s, got %s", c.Risk.WebhookTimeout)
	}
	if f := c.Circuit.Failures; f < -1 || f > 1000 {
		return bad("circuit.failures", "want 0 (the default), -1 (off) or between 1 and 1000, got %d", f)
	}
	if d := c.Circuit.OpenFor; d != 0 && (d < 100*time.Millisecond || d > 10*time.Minute) {
		return bad("circuit.open_for", "want 0 (the default) or between 100ms and 10m, got %s", d)
	}
	if n := c.IdempotencyNewKeysPerSecond; n < -1 || n > 1_000_000 {
		return bad("idempotency_new_keys_per_second", "want 0 (the default), -1 (no bound) or between 1 and 1000000, got %d", n)
	}
	if r := c.Risk; r.PageTokenTTL < 0 || r.PageTokenTTL > 24*time.Hour {
		return bad("risk.page_token_ttl", "want 0 (the default) or up to 24h, got %s", r.PageTokenTTL)
	}
	if r := c.Risk; r.PageTokenMinAge < 0 || r.PageTokenMinAge > time.Hour {
		return bad("risk.page_token_min_age", "want 0 (the default) or up to 1h, got %s", r.PageTokenMinAge)
	}
	if c.Risk.PageTokenUses < 0 {
		return bad("risk.page_token_uses", "may not be negative (0 is the default)")
	}
	if r := c.Risk; r.MinAccountAge < 0 || r.MinAccountAge > 366*24*time.Hour {
		return bad("risk.min_account_age", "want 0 (none) or up to 8784h, got %s", r.MinAccountAge)
	}
	if c.Risk.ScoreDeny < 0 {
		return bad("risk.score_deny", "may not be negative (0 is the default)")
	}
	a := c.Admission
	if a.ReadsMax < 0 || a.WritesMax < 0 || a.WritesMin < 0 || a.AdminMax < 0 || a.SessionsMax < 0 || a.PaysMax < 0 ||
		a.ReadsMax > 1<<20 || a.WritesMax > 1<<20 || a.WritesMin > 1<<20 || a.AdminMax > 1<<20 || a.SessionsMax > 1<<20 || a.PaysMax > 1<<20 {
		return bad("admission", "in-flight limits must be 0 (the default) or between 1 and 1048576")
	}
	if a.WritesMin > 0 && a.WritesMax > 0 && a.WritesMin > a.WritesMax {
		return bad("admission.writes_min", "want at most admission.writes_max (%d), got %d", a.WritesMax, a.WritesMin)
	}
	if a.SaleAdmitFactor < 0 || a.SaleAdmitFactor > 1000 {
		return bad("admission.sale_admit_factor", "want 0 (the default) or between 1 and 1000, got %d", a.SaleAdmitFactor)
	}
	if w := c.Sales.LotteryWindow; w != 0 && w != Off && (w < time.Millisecond || w > 10*time.Second) {
		return bad("sales.lottery_window", "want 0 (the default), %q or between 1ms and 10s, got %s", off, w)
	}
	if q := c.Sales.LotteryQueueMax; q < 0 || q > 1<<20 {
		return bad("sales.lottery_queue_max", "want 0 (the default) or between 1 and 1048576, got %d", q)
	}
	return nil
}

// field is one settable leaf of Config.
type field struct {
	v reflect.Value
	// off is whether the setting may be spelled "off" (its tag
	// spell:"off"): a duration, set to Off.
	off bool
}

func (f field) set(s string) error {
	switch f.v.Interface().(type) {
	case time.Duration:
		if f.off && s == off {
			f.v.SetInt(int64(Off))
			return nil
		}
		if s == forever {
			f.v.SetInt(int64(Forever))
			return nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a duration like 500ms or 2s, got %q", s)
		}
		f.v.SetInt(int64(d))
		return nil
	case []string:
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		f.v.Set(reflect.ValueOf(out))
		return nil
	}
	switch f.v.Kind() {
	case reflect.String:
		f.v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", s)
		}
		f.v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("want an integer, got %q", s)
		}
		f.v.SetInt(n)
	case reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("want a number, got %q", s)
		}
		f.v.SetFloat(x)
	default:
		panic(fmt.Sprintf("BUG: config: unsupported field kind %s", f.v.Kind()))
	}
	return nil
}

func fieldsOf(c *Config) map[string]field {
	out := make(map[string]field)
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			key := t.Field(i).Tag.Get("key")
			if key == "" {
				continue
			}
			if prefix != "" {
				key = prefix + "." + key
			}
			fv := v.Field(i)
			if fv.Kind() == reflect.Struct {
				walk(key, fv)
				continue
			}
			out[key] = field{v: fv, off: t.Field(i).Tag.Get("spell") == off}
		}
	}
	walk("", reflect.ValueOf(c).Elem())
	return out
}

// flattenJSON turns {"login": {"provider": "dev"}} into
// {"login.provider": "dev"}; arrays become comma-separated lists.
func flattenJSON(data []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var root map[string]any
	if err := dec.Decode(&root); err != nil {
		return nil, err
	}
	out := make(map[string]string)
	var walk func(prefix string, m map[string]any) error
	walk = func(prefix string, m map[string]any) error {
		for k, v := range m {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			switch x := v.(type) {
			case map[string]any:
				if err := walk(key, x); err != nil {
					return err
				}
			case []any:
				parts := make([]string, 0, len(x))
				for _, e := range x {
					s, ok := e.(string)
					if !ok {
						return fmt.Errorf("%s: want a list of strings", key)
					}
					if strings.Contains(s, ",") {
						return fmt.Errorf("%s: list entries may not contain ','", key)
					}
					parts = append(parts, s)
				}
				out[key] = strings.Join(parts, ",")
			case string:
				out[key] = x
			case json.Number:
				out[key] = x.String()
			case bool:
				out[key] = strconv.FormatBool(x)
			case nil:
				return fmt.Errorf("%s: null is not a value", key)
			default:
				return fmt.Errorf("%s: unsupported value %v", key, x)
			}
		}
		return nil
	}
	if err := walk("", root); err != nil {
		return nil, err
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
