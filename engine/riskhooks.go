package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/surge-retail/surge/internal/coarseclock"
)

// RiskConfig configures the built-in risk hook (NewRiskHook). The zero
// value of each field means its default; the zero RiskConfig allows all.
type RiskConfig struct {
	// UserRate is reserving attempts per second per user; 0 means no limit.
	UserRate float64
	// UserBurst is the per-user bucket size. Default
	// RiskUserBurstDefault (10).
	UserBurst int
	// IPRate is reserving attempts per second per client IP; 0 means no
	// limit.
	IPRate float64
	// IPBurst is the per-IP bucket size. Default RiskIPBurstDefault (100).
	IPBurst int
	// Blocklist holds user ids, IPs or device ids that are always denied.
	Blocklist []string
	// RequireDevice denies attempts without a device id (X-Device-Id).
	RequireDevice bool
	// WebhookURL, when set, is POSTed every attempt that passed the other
	// checks, as JSON {"user_id", "ip", "device_id", "route", "sale_id",
	// "store_id", "user_held"} plus the signals and the score
	// (riskWebhookRequest), and answers {"allow": bool, "reason":
	// string}.
	WebhookURL string
	// WebhookTimeout bounds one webhook call. Default
	// RiskWebhookTimeoutDefault (50ms).
	WebhookTimeout time.Duration
	// WebhookFailOpen allows the attempt when the webhook cannot answer
	// (timeout, error, non-2xx, bad JSON, too many calls in flight);
	// otherwise it is denied with reason "webhook_unavailable".
	WebhookFailOpen bool
	// AccountsPerDevice raises the signal device_accounts for an attempt
	// from a device that more than this many accounts used within
	// LinkWindow (a farm of accounts on one phone; its default weight
	// denies alone); 0 means not counted.
	AccountsPerDevice int
	// DevicesPerIP raises the signal ip_devices for an attempt from an
	// address that more than this many devices used within LinkWindow (an
	// attempt without a device counts its account as one; its default
	// weight denies only with another signal); 0 means not counted. Mind
	// carrier NAT, where many shoppers share an address: keep it generous.
	DevicesPerIP int
	// LinkWindow is the sliding window of the two counts above. Default
	// RiskLinkWindowDefault (10m).
	LinkWindow time.Duration
	// DeviceAccountsFree is how many accounts may share a device before
	// device_accounts weighs anything (a family phone); from there each
	// account more weighs a step more, up to the full weight past
	// AccountsPerDevice. Default RiskDeviceAccountsFreeDefault (2);
	// negative: none free; AccountsPerDevice or more: no grading (a
	// cliff at AccountsPerDevice).
	DeviceAccountsFree int
	// IPDevicesFree is the same for devices on an address (a household,
	// a shop's Wi-Fi) up to DevicesPerIP. Default
	// RiskIPDevicesFreeDefault (10).
	IPDevicesFree int
	// LinkLoginsOff counts links only at reserving attempts; by default a
	// login with a device id counts its account on the device and the
	// device on the address too.
	LinkLoginsOff bool
	// PageTokenOff leaves the page-view token unjudged (no signal, no
	// memory of tokens seen).
	PageTokenOff bool
	// PageTokenTTL: a token older than this is expired. Default
	// RiskPageTokenTTLDefault (10m).
	PageTokenTTL time.Duration
	// PageTokenMinAge: a token used sooner after its page view is too
	// young (no human clicks that fast). Default
	// RiskPageTokenMinAgeDefault (300ms); negative: no minimum.
	PageTokenMinAge time.Duration
	// PageTokenUses: a token used more often than this (or by a second
	// account) is reused. Default RiskPageTokenUsesDefault (5).
	PageTokenUses int
	// MinAccountAge is the minimum account age (since its first session)
	// of every reserve whose sale does not set its own; 0: none.
	MinAccountAge time.Duration
	// ScoreDeny: an attempt whose signals weigh this much or more is
	// denied, reason its heaviest signal. Default RiskScoreDenyDefault
	// (100).
	ScoreDeny int
	// Weights are the signals' weights (RiskWeightsDefault for zero ones).
	Weights RiskWeights
	// KeysMax bounds the users and the IPs tracked by the token buckets,
	// and the devices and IPs whose links are counted (each); the least
	// recently seen are forgotten. Default 200_000.
	KeysMax int
	// Now is the clock of the token buckets, the link window and the
	// page token's age. Default coarseclock.Now (milliseconds).
	Now func() time.Time
}

// Risk verdict reasons of the built-in hook.
const (
	RiskReasonBlocklist          = "blocklist"
	RiskReasonNoDevice           = "no_device"
	RiskReasonRateUser           = "rate_user"
	RiskReasonRateIP             = "rate_ip"
	RiskReasonWebhookUnavailable = "webhook_unavailable"
	// RiskReasonWebhookDeny replaces a webhook's reason that is empty or
	// not a short token ([a-z0-9_.:-], at most riskReasonMax bytes), so
	// that the reasons counted in stats stay a small set.
	RiskReasonWebhookDeny = "webhook_deny"
)

// Defaults of RiskConfig. The bursts are what `surge serve` has always run
// with: a shopper may tap a few times in a row, then UserRate holds.
const (
	RiskUserBurstDefault      = 10
	RiskIPBurstDefault        = 100
	RiskWebhookTimeoutDefault = 50 * time.Millisecond
)

const (
	riskKeysMaxDefault = 200_000
	// riskWebhookTimeoutMax bounds the configured timeout.
	riskWebhookTimeoutMax = 10 * time.Second
	// riskWebhookInflightMax bounds concurrent webhook calls; beyond it an
	// attempt is treated as "webhook unavailable" instead of queueing.
	riskWebhookInflightMax = 256
	// riskWebhookRespMax bounds the webhook's answer body (bytes).
	riskWebhookRespMax = 4096
	// riskReasonMax bounds a webhook's reason (bytes).
	riskReasonMax = 32
	// riskBlocklistMax bounds the blocklist.
	riskBlocklistMax = 1_000_000
)

// AllowAll returns a RiskHook that allows every attempt.
func AllowAll() RiskHook { return riskAllowAll{} }

type riskAllowAll struct{}

func (riskAllowAll) Check(context.Context, RiskInput) Verdict { return Verdict{Allow: true} }

// riskChain is the built-in hook: blocklist, device, the score (linkage,
// page token, account age), per-user and per-IP token buckets, webhook, in
// that order; the first "no" wins.
type riskChain struct {
	block         map[string]struct{}
	requireDevice bool

	userLimit rate.Limit
	userBurst int
	users     *lru[*rate.Limiter]
	ipLimit   rate.Limit
	ipBurst   int
	ips       *lru[*rate.Limiter]
	now       func() time.Time

	links *riskLinks // nil: not counted

	pages         *pageSeen // nil: page tokens not judged
	pageTTL       time.Duration
	pageMinAge    time.Duration
	pageUses      int
	minAccountAge time.Duration
	scoreDeny     int
	weights       RiskWeights

	webhook *riskWebhook
}

var _ RiskHook = (*riskChain)(nil)

// WithDefaults returns cfg with zero fields set to their defaults (the
// rates stay as they are: zero means no limit).
func (cfg RiskConfig) WithDefaults() RiskConfig {
	if cfg.UserBurst <= 0 {
		cfg.UserBurst = RiskUserBurstDefault
	}
	if cfg.IPBurst <= 0 {
		cfg.IPBurst = RiskIPBurstDefault
	}
	if cfg.WebhookTimeout <= 0 {
		cfg.WebhookTimeout = RiskWebhookTimeoutDefault
	}
	if cfg.KeysMax <= 0 {
		cfg.KeysMax = riskKeysMaxDefault
	}
	if cfg.LinkWindow <= 0 {
		cfg.LinkWindow = RiskLinkWindowDefault
	}
	switch {
	case cfg.DeviceAccountsFree == 0:
		cfg.DeviceAccountsFree = RiskDeviceAccountsFreeDefault
	case cfg.DeviceAccountsFree < 0:
		cfg.DeviceAccountsFree = 0
	}
	switch {
	case cfg.IPDevicesFree == 0:
		cfg.IPDevicesFree = RiskIPDevicesFreeDefault
	case cfg.IPDevicesFree < 0:
		cfg.IPDevicesFree = 0
	}
	if cfg.PageTokenTTL <= 0 {
		cfg.PageTokenTTL = RiskPageTokenTTLDefault
	}
	if cfg.PageTokenMinAge == 0 {
		cfg.PageTokenMinAge = RiskPageTokenMinAgeDefault
	} else if cfg.PageTokenMinAge < 0 {
		cfg.PageTokenMinAge = 0
	}
	if cfg.PageTokenUses <= 0 {
		cfg.PageTokenUses = RiskPageTokenUsesDefault
	}
	if cfg.ScoreDeny <= 0 {
		cfg.ScoreDeny = RiskScoreDenyDefault
	}
	cfg.Weights = cfg.Weights.withDefaults()
	if cfg.Now == nil {
		// Milliseconds are enough for buckets, windows and token ages, and
		// an atomic load costs far less than time.Now on our VMs.
		cfg.Now = coarseclock.Now
	}
	return cfg
}

// NewRiskHook returns the built-in chain: blocklist -> device -> the score
// (linkage: accounts per device, devices per address, graded, and the two
// together; the page token; the
// account's age) -> per-user and per-IP token buckets -> webhook. Bad
// configuration is ErrInvalid.
func NewRiskHook(cfg RiskConfig) (RiskHook, error) {
	bad := func(what string) (RiskHook, error) {
		return nil, fmt.Errorf("cannot create risk hook: %w: %s", ErrInvalid, what)
	}
	for _, r := range []float64{cfg.UserRate, cfg.IPRate} {
		if r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
			return bad("rates must be finite and >= 0")
		}
	}
	if cfg.AccountsPerDevice < 0 || cfg.DevicesPerIP < 0 || cfg.LinkWindow < 0 || cfg.LinkWindow > 24*time.Hour {
		return bad("accounts per device, devices per IP or the link window out of range")
	}
	if cfg.PageTokenTTL < 0 || cfg.PageTokenTTL > 24*time.Hour || cfg.PageTokenMinAge > time.Hour ||
		cfg.PageTokenUses < 0 || cfg.MinAccountAge < 0 || cfg.MinAccountAge > MinAccountAgeSecondsMax*time.Second ||
		cfg.ScoreDeny < 0 {
		return bad("page token TTL, minimum age or uses, minimum account age or deny score out of range")
	}
	if cfg.UserBurst < 0 || cfg.IPBurst < 0 || cfg.KeysMax < 0 || cfg.WebhookTimeout < 0 ||
		cfg.WebhookTimeout > riskWebhookTimeoutMax || len(cfg.Blocklist) > riskBlocklistMax {
		return bad("bursts, KeysMax, WebhookTimeout or Blocklist out of range")
	}
	cfg = cfg.WithDefaults()
	c := &riskChain{
		block:         make(map[string]struct{}, len(cfg.Blocklist)),
		requireDevice: cfg.RequireDevice,
		now:           cfg.Now,
		links:         newRiskLinks(cfg),
		pageTTL:       cfg.PageTokenTTL,
		pageMinAge:    cfg.PageTokenMinAge,
		pageUses:      cfg.PageTokenUses,
		minAccountAge: cfg.MinAccountAge,
		scoreDeny:     cfg.ScoreDeny,
		weights:       cfg.Weights,
	}
	if !cfg.PageTokenOff {
		c.pages = newPageSeen(cfg.KeysMax)
	}
	for _, b := range cfg.Blocklist {
		if b = strings.TrimSpace(b); b != "" {
			c.block[b] = struct{}{}
		}
	}
	if cfg.UserRate > 0 {
		c.userLimit, c.userBurst = rate.Limit(cfg.UserRate), cfg.UserBurst
		c.users = newLRU[*rate.Limiter](cfg.KeysMax)
	}
	if cfg.IPRate > 0 {
		c.ipLimit, c.ipBurst = rate.Limit(cfg.IPRate), cfg.IPBurst
		c.ips = newLRU[*rate.Limiter](cfg.KeysMax)
	}
	if cfg.WebhookURL != "" {
		u, err := url.Parse(cfg.WebhookURL)
		if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return bad(fmt.Sprintf("webhook URL %q is not an http(s) URL", cfg.WebhookURL))
		}
		timeout := cfg.WebhookTimeout
		c.webhook = &riskWebhook{
			url:      u.String(),
			timeout:  timeout,
			failOpen: cfg.WebhookFailOpen,
			sem:      make(chan struct{}, riskWebhookInflightMax),
			client: &http.Client{Transport: &http.Transport{
				Proxy:               nil, // the risk service is called directly
				MaxIdleConnsPerHost: riskWebhookInflightMax,
				MaxConnsPerHost:     riskWebhookInflightMax,
				IdleConnTimeout:     90 * time.Second,
			}},
		}
	}
	return c, nil
}

func (c *riskChain) Check(ctx context.Context, in RiskInput) Verdict {
	if len(c.block) > 0 && (c.blocked(in.UserID) || c.blocked(in.IP) || c.blocked(in.DeviceID)) {
		return Verdict{Reason: RiskReasonBlocklist}
	}
	if c.requireDevice && in.DeviceID == "" {
		return Verdict{Reason: RiskReasonNoDevice}
	}
	var sig riskSignals
	// A sale's own minimum account age is judged even when nothing else
	// of the score is on.
	if c.scored() || in.MinAccountAge > 0 {
		sig = c.measure(&in, c.now())
		if sig.Score >= c.scoreDeny {
			return Verdict{Reason: sig.Top}
		}
	}
	if c.users != nil || c.ips != nil {
		now := c.now()
		if c.users != nil && in.UserID != "" && !riskTake(c.users, in.UserID, c.userLimit, c.userBurst, now) {
			return Verdict{Reason: RiskReasonRateUser}
		}
		if c.ips != nil && in.IP != "" && !riskTake(c.ips, in.IP, c.ipLimit, c.ipBurst, now) {
			return Verdict{Reason: RiskReasonRateIP}
		}
	}
	if c.webhook != nil {
		return c.webhook.check(ctx, in, &sig, c.scoreDeny)
	}
	return Verdict{Allow: true}
}

func (c *riskChain) blocked(id string) bool {
	if id == "" {
		return false
	}
	_, ok := c.block[id]
	return ok
}

// riskTake takes a token from key's bucket (a new key starts full).
func riskTake(m *lru[*rate.Limiter], key string, limit rate.Limit, burst int, now time.Time) bool {
	lim := m.GetOrAdd(key, func() *rate.Limiter { return rate.NewLimiter(limit, burst) })
	return lim.AllowN(now, 1)
}

type riskWebhook struct {
	url      string
	timeout  time.Duration
	failOpen bool
	sem      chan struct{}
	client   *http.Client
}

type riskWebhookRequest struct {
	UserID   string `json:"user_id"`
	IP       string `json:"ip"`
	DeviceID string `json:"device_id"`
	Route    string `json:"route"`
	SaleID   string `json:"sale_id"`
	StoreID  string `json:"store_id"`
	UserHeld int64  `json:"user_held"`
	// Linkage signals (0 when not counted): accounts seen on this device
	// and devices seen on this address within the link window.
	DeviceAccounts int `json:"device_accounts"`
	IPDevices      int `json:"ip_devices"`
	// The page token: "ok", or its signal (page_token_missing, _invalid,
	// _expired, _young, _reused); "" when not judged. Its age since the
	// page view and its uses so far (this one included) when signed.
	PageToken      string `json:"page_token"`
	PageTokenAgeMs int64  `json:"page_token_age_ms"`
	PageTokenUses  int    `json:"page_token_uses"`
	// The account's age since its first session (-1: unknown) and the
	// minimum that applied (0: none).
	AccountAgeMs    int64 `json:"account_age_ms"`
	MinAccountAgeMs int64 `json:"min_account_age_ms"`
	// Signals raised, their summed weight, and the score at which the
	// built-in hook denies (this attempt was below it).
	Signals   []string `json:"signals"`
	Score     int      `json:"score"`
	ScoreDeny int      `json:"score_deny"`
}

type riskWebhookAnswer struct {
	Allow  *bool  `json:"allow"`
	Reason string `json:"reason"`
}

func (w *riskWebhook) unavailable() Verdict {
	return Verdict{Allow: w.failOpen, Reason: RiskReasonWebhookUnavailable}
}

func (w *riskWebhook) check(ctx context.Context, in RiskInput, sig *riskSignals, scoreDeny int) Verdict {
	select {
	case w.sem <- struct{}{}:
		defer func() { <-w.sem }()
	default:
		return w.unavailable()
	}
	body, err := json.Marshal(riskWebhookRequest{
		UserID: in.UserID, IP: in.IP, DeviceID: in.DeviceID, Route: in.Route,
		SaleID: in.SaleID, StoreID: in.StoreID, UserHeld: in.UserHeld,
		DeviceAccounts: sig.DeviceAccounts, IPDevices: sig.IPDevices,
		PageToken: sig.Page, PageTokenAgeMs: sig.PageAgeMs, PageTokenUses: sig.PageUses,
		AccountAgeMs: sig.AccountAgeMs, MinAccountAgeMs: sig.MinAccountAgeMs,
		Signals: sig.list(), Score: sig.Score, ScoreDeny: scoreDeny,
	})
	if err != nil {
		return w.unavailable()
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return w.unavailable()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return w.unavailable()
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, riskWebhookRespMax))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return w.unavailable()
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, riskWebhookRespMax+1))
	if err != nil || len(raw) > riskWebhookRespMax {
		return w.unavailable()
	}
	var a riskWebhookAnswer
	if err := json.Unmarshal(raw, &a); err != nil || a.Allow == nil {
		return w.unavailable()
	}
	if *a.Allow {
		return Verdict{Allow: true}
	}
	return Verdict{Reason: riskReason(a.Reason)}
}

// riskReason keeps a webhook's reason when it is a short token.
func riskReason(r string) string {
	if r == "" || len(r) > riskReasonMax {
		return RiskReasonWebhookDeny
	}
	for i := 0; i < len(r); i++ {
		c := r[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return RiskReasonWebhookDeny
		}
	}
	return r
}
