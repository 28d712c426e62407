package gateway

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/surge-retail/surge/internal/wechatpay"
)

// Defaults of Options. Units last.
const (
	// BodyMaxBytesDefault is the default request body limit (API.md: 64 KiB).
	BodyMaxBytesDefault = 64 << 10
	// SessionTTLDefault is how long a session token stays valid by default.
	SessionTTLDefault = 24 * time.Hour
	// ReadsInflightMaxDefault bounds concurrent public reads (storefront,
	// sale, team, reservation and order reads). It is what `surge serve`
	// has always run with.
	ReadsInflightMaxDefault = 4096
	// WritesInflightMaxDefault bounds concurrent reserving writes (flash
	// reserve, team open and join, checkout). It is what `surge serve`
	// has always run with for all writes.
	WritesInflightMaxDefault = 1024
	// SessionsInflightMaxDefault bounds concurrent logins: a login storm
	// (each may wait on the login provider) never takes the capacity of
	// reserves or payments.
	SessionsInflightMaxDefault = 256
	// PaysInflightMaxDefault bounds concurrent pays and cancels, capacity
	// that new reserves cannot take: a payment is never shed because of a
	// crowd of reserves while its hold ticks down.
	PaysInflightMaxDefault = 512
	// WritesInflightMinDefault is the lowest the adaptive limit of the
	// reserving writes goes (adaptive.go). A durable yes waits for a
	// synced commit (Pebble's WAL, Redis's AOF) that many writes share,
	// so throughput is writes in flight over commit latency (Little's
	// law): at 16 a 1-2 ms commit capped a node near 10k reserves/s,
	// half of what Pebble gives at 128.
	WritesInflightMinDefault = 128
	// AdminInflightMaxDefault bounds concurrent admin and feed calls.
	AdminInflightMaxDefault = 64
	// RetryAfterSecondsDefault is the Retry-After value of shed answers.
	RetryAfterSecondsDefault = 1
	// EngineTimeoutDefault bounds one engine call of a request.
	EngineTimeoutDefault = 5 * time.Second
	// LoginTimeoutDefault bounds one code2session call (what `surge serve`
	// has always run with).
	LoginTimeoutDefault = 3 * time.Second
	// FeedWindowDefault is how far a feed timestamp may be off the clock.
	FeedWindowDefault = 5 * time.Minute
	// ReadTimeoutDefault / WriteTimeoutDefault / IdleTimeoutDefault are the
	// connection timeouts of the fasthttp server.
	ReadTimeoutDefault  = 10 * time.Second
	WriteTimeoutDefault = 10 * time.Second
	IdleTimeoutDefault  = 60 * time.Second
	// ConnsMaxDefault bounds concurrent connections (fasthttp Concurrency).
	ConnsMaxDefault = 64 << 10
	// WeChatBaseURLDefault is WeChat's API host.
	WeChatBaseURLDefault = "https://api.weixin.qq.com"
	// sessionSecretLenMin is the shortest accepted session secret, bytes.
	sessionSecretLenMin = 16
	// adminFailClientsMax bounds the addresses whose wrong admin tokens
	// are counted.
	adminFailClientsMax = 4096
	// secretLenMin is the shortest accepted admin token and feed secret,
	// bytes: a short one is guessed (surge serve generates 32 random
	// characters when none is set).
	secretLenMin = 16
)

// Login providers of LoginOptions.Provider.
const (
	// ProviderDev takes the login code as the user's openid (no WeChat).
	ProviderDev = "dev"
	// ProviderWeChat calls code2session on WeChatBaseURL.
	ProviderWeChat = "wechat"
)

// LoginOptions configures POST /api/v1/session.
type LoginOptions struct {
	// Provider is ProviderDev or ProviderWeChat. Default ProviderDev.
	Provider string
	// WeChatBaseURL is where /sns/jscode2session is called. Default
	// WeChatBaseURLDefault.
	WeChatBaseURL string
	// AppID and AppSecret are the mini-program's credentials; required for
	// ProviderWeChat.
	AppID     string
	AppSecret string
	// Timeout bounds one code2session call. Default LoginTimeoutDefault
	// (3s).
	Timeout time.Duration
}

// Options configures a Server. The zero value of every field except Engine
// means its documented default.
type Options struct {
	// Engine is the business layer. Required.
	Engine Engine
	// AdminToken is the bearer token of /admin/v1 and /debug/pprof. ""
	// disables those endpoints (every call is answered 40100).
	AdminToken string
	// AdminFailuresBurst and AdminFailuresPerSecond throttle wrong admin
	// tokens per client address: AdminFailuresBurst of them at once, then
	// AdminFailuresPerSecond; past that the address gets 429/42900 at once
	// on every admin route until its bucket refills. Right tokens take
	// nothing. Default 10 and 1.
	AdminFailuresBurst     int
	AdminFailuresPerSecond float64
	// LoginFailuresBurst and LoginFailuresPerSecond throttle refused login
	// codes per client address the same way (each costs a call to the
	// login provider). Logins that succeed take nothing. Default 20 and 2.
	LoginFailuresBurst     int
	LoginFailuresPerSecond float64
	// FeedSecret is the HMAC-SHA256 key of the inventory feed. "" disables
	// the feed (every call is answered 40100).
	FeedSecret string
	// SessionSecret signs session tokens (at least 16 bytes). Default: 32
	// random bytes, so tokens do not survive a restart.
	SessionSecret []byte
	// SessionTTL is the lifetime of a session token. Default
	// SessionTTLDefault (24h).
	SessionTTL time.Duration
	// Login configures the login provider. Default provider "dev".
	Login LoginOptions
	// WeChatPay verifies WeChat Pay's notifications (signature, timestamp,
	// nonce) and decrypts them. Default nil: every notification is refused
	// (API.md: the route exists whatever the provider).
	WeChatPay *wechatpay.Verifier
	// BodyMaxBytes is the request body limit; larger bodies get 413/41300.
	// Default BodyMaxBytesDefault (64 KiB).
	BodyMaxBytes int
	// TrustedProxies are the CIDRs (or single addresses) whose
	// X-Forwarded-For is believed, as nginx's set_real_ip_from with
	// real_ip_recursive. Default loopback: 127.0.0.0/8 and ::1/128.
	TrustedProxies []string
	// ReadsInflightMax, WritesInflightMax, AdminInflightMax,
	// SessionsInflightMax and PaysInflightMax bound the requests of each
	// route class being served at once; above it a request is answered
	// 503/50300 with Retry-After at once. Defaults ReadsInflightMaxDefault
	// (4096), WritesInflightMaxDefault (1024), AdminInflightMaxDefault
	// (64), SessionsInflightMaxDefault (256), PaysInflightMaxDefault (512).
	ReadsInflightMax    int
	WritesInflightMax   int
	AdminInflightMax    int
	SessionsInflightMax int
	PaysInflightMax     int
	// WritesInflightMin is the floor of the adaptive limit of the
	// reserving writes: their in-flight bound moves between it and
	// WritesInflightMax with the latency of admitted writes against their
	// no-load latency (adaptive.go). Default WritesInflightMinDefault (128),
	// at most WritesInflightMax.
	WritesInflightMin int
	// WritesLimitFixed keeps the writes' bound at WritesInflightMax (no
	// adaptive limit).
	WritesLimitFixed bool
	// RetryAfterSeconds is the Retry-After of shed answers. Default 1.
	RetryAfterSeconds int
	// EngineTimeout bounds the engine calls of one request. Default
	// EngineTimeoutDefault (5s).
	EngineTimeout time.Duration
	// FeedWindow is how far X-Surge-Timestamp may be off the clock.
	// Default FeedWindowDefault (5 minutes).
	FeedWindow time.Duration
	// ReadTimeout, WriteTimeout and IdleTimeout are the connection timeouts.
	// Defaults 10s, 10s, 60s.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// ConnsMax bounds concurrent connections. Default ConnsMaxDefault.
	ConnsMax int
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
	// Registry receives the gateway's metrics, served on /metrics. Default:
	// a new registry (with Go and process collectors).
	Registry *prometheus.Registry
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// WithDefaults returns o with defaults filled in, or an error when o is not
// usable. New calls it; a caller may, to see the options a Server runs
// with.
func (o Options) WithDefaults() (Options, error) {
	if o.Engine == nil {
		return o, errors.New("gateway: Options.Engine is required")
	}
	if len(o.SessionSecret) == 0 {
		o.SessionSecret = make([]byte, 32)
		if _, err := rand.Read(o.SessionSecret); err != nil {
			return o, fmt.Errorf("cannot generate session secret: %w", err)
		}
	} else {
		if len(o.SessionSecret) < sessionSecretLenMin {
			return o, fmt.Errorf("gateway: SessionSecret has %d bytes; want at least %d", len(o.SessionSecret), sessionSecretLenMin)
		}
		o.SessionSecret = append([]byte(nil), o.SessionSecret...)
	}
	if n := len(o.AdminToken); n > 0 && n < secretLenMin {
		return o, fmt.Errorf("gateway: the admin token has %d characters; want at least %d (unset, one is generated)", n, secretLenMin)
	}
	if n := len(o.FeedSecret); n > 0 && n < secretLenMin {
		return o, fmt.Errorf("gateway: the feed secret has %d bytes; want at least %d (unset, one is generated)", n, secretLenMin)
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = SessionTTLDefault
	}
	if o.AdminFailuresBurst <= 0 {
		o.AdminFailuresBurst = 10
	}
	if o.AdminFailuresPerSecond <= 0 {
		o.AdminFailuresPerSecond = 1
	}
	if o.LoginFailuresBurst <= 0 {
		o.LoginFailuresBurst = 20
	}
	if o.LoginFailuresPerSecond <= 0 {
		o.LoginFailuresPerSecond = 2
	}
	switch o.Login.Provider {
	case "":
		o.Login.Provider = ProviderDev
	case ProviderDev:
	case ProviderWeChat:
		if o.Login.AppID == "" || o.Login.AppSecret == "" {
			return o, errors.New("gateway: login provider wechat needs AppID and AppSecret")
		}
	default:
		return o, fmt.Errorf("gateway: unknown login provider %q (want dev or wechat)", o.Login.Provider)
	}
	if o.Login.WeChatBaseURL == "" {
		o.Login.WeChatBaseURL = WeChatBaseURLDefault
	}
	o.Login.WeChatBaseURL = strings.TrimRight(o.Login.WeChatBaseURL, "/")
	if o.Login.Timeout <= 0 {
		o.Login.Timeout = LoginTimeoutDefault
	}
	if o.BodyMaxBytes <= 0 {
		o.BodyMaxBytes = BodyMaxBytesDefault
	}
	if o.TrustedProxies == nil {
		o.TrustedProxies = []string{"127.0.0.0/8", "::1/128"}
	}
	if o.ReadsInflightMax <= 0 {
		o.ReadsInflightMax = ReadsInflightMaxDefault
	}
	if o.WritesInflightMax <= 0 {
		o.WritesInflightMax = WritesInflightMaxDefault
	}
	if o.WritesInflightMin <= 0 {
		o.WritesInflightMin = WritesInflightMinDefault
	}
	o.WritesInflightMin = min(o.WritesInflightMin, o.WritesInflightMax)
	if o.AdminInflightMax <= 0 {
		o.AdminInflightMax = AdminInflightMaxDefault
	}
	if o.SessionsInflightMax <= 0 {
		o.SessionsInflightMax = SessionsInflightMaxDefault
	}
	if o.PaysInflightMax <= 0 {
		o.PaysInflightMax = PaysInflightMaxDefault
	}
	if o.RetryAfterSeconds <= 0 {
		o.RetryAfterSeconds = RetryAfterSecondsDefault
	}
	if o.EngineTimeout <= 0 {
		o.EngineTimeout = EngineTimeoutDefault
	}
	if o.FeedWindow <= 0 {
		o.FeedWindow = FeedWindowDefault
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = ReadTimeoutDefault
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = WriteTimeoutDefault
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = IdleTimeoutDefault
	}
	if o.ConnsMax <= 0 {
		o.ConnsMax = ConnsMaxDefault
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// parsePrefixes parses CIDRs or single addresses.
func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("cannot parse trusted proxy %q: %w", s, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("cannot parse trusted proxy %q: %w", s, err)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
