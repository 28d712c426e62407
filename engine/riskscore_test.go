package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
)

// pageIn is an attempt of user on store s1 carrying a signed page token
// of store, issued at issued, with the nonce n.
func pageIn(user, ip, device, store string, issued time.Time, n byte) RiskInput {
	in := riskIn(user, ip, device)
	in.Page = PageView{State: PageTokenSigned, IssuedMs: issued.UnixMilli(), StoreID: store}
	in.Page.Nonce[0] = n
	return in
}

// onRoute is in on another route.
func onRoute(in RiskInput, route string) RiskInput {
	in.Route = route
	return in
}

// scoreOf checks what the chain measures of in (its signals and score)
// and what it decides.
func scoreOf(t *testing.T, c *riskChain, in RiskInput, signals []string, score int, allow bool) {
	t.Helper()
	sig := c.measure(&in, c.now())
	if got := sig.list(); !reflect.DeepEqual(got, signals) || sig.Score != score {
		t.Fatalf("signals of %+v = %q, score %d; want %q, score %d", in, got, sig.Score, signals, score)
	}
	if (sig.Score < c.scoreDeny) != allow {
		t.Fatalf("score %d against deny %d: allow = %v; want %v", sig.Score, c.scoreDeny, !allow, allow)
	}
}

// TestRiskPageTokenSignals: each page token signal with its exact weight
// in the score and the decision of the default configuration.
func TestRiskPageTokenSignals(t *testing.T) {
	clock := newAnswerClock()
	hook, err := NewRiskHook(RiskConfig{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := hook.(*riskChain)
	w := RiskWeightsDefault
	now := clock.Now()
	none := []string{}
	// No token on a flash reserve: only a script fires without a page
	// view; denied alone.
	scoreOf(t, c, riskIn("u1", "10.0.0.1", "d1"), []string{RiskReasonPageTokenMissing}, w.FlashPageTokenMissing, false)
	riskWant(t, hook, riskIn("u1", "10.0.0.1", "d1"), false, RiskReasonPageTokenMissing)
	// No token on a checkout, a team call or a registration: allowed
	// alone.
	for _, route := range []string{"checkout", "group_open", "group_join", "flash_register"} {
		scoreOf(t, c, onRoute(riskIn("u1", "10.0.0.1", "d1"), route), []string{RiskReasonPageTokenMissing}, w.PageTokenMissing, true)
		riskWant(t, hook, onRoute(riskIn("u1", "10.0.0.1", "d1"), route), true, "")
	}
	// A token a human got 600 ms before the click: nothing raised.
	scoreOf(t, c, pageIn("u2", "10.0.0.2", "d2", "s1", now.Add(-600*time.Millisecond), 2), none, 0, true)
	// Bad signature or malformed (the gateway says so), or another store's.
	bad := riskIn("u3", "10.0.0.3", "d3")
	bad.Page.State = PageTokenBad
	scoreOf(t, c, bad, []string{RiskReasonPageTokenInvalid}, w.PageTokenInvalid, false)
	riskWant(t, hook, bad, false, RiskReasonPageTokenInvalid)
	riskWant(t, hook, pageIn("u3", "10.0.0.3", "d3", "s2", now.Add(-time.Second), 3), false, RiskReasonPageTokenInvalid)
	// Issued far in another node's future: invalid.
	riskWant(t, hook, pageIn("u3", "10.0.0.3", "d3", "s1", now.Add(2*time.Minute), 4), false, RiskReasonPageTokenInvalid)
	// Expired: as good as none.
	scoreOf(t, c, pageIn("u4", "10.0.0.4", "d4", "s1", now.Add(-11*time.Minute), 5), []string{RiskReasonPageTokenExpired}, w.PageTokenExpired, true)
	// Too young: fired 100 ms after the page view.
	scoreOf(t, c, pageIn("u5", "10.0.0.5", "d5", "s1", now.Add(-100*time.Millisecond), 6), []string{RiskReasonPageTokenYoung}, w.PageTokenYoung, false)
	riskWant(t, hook, pageIn("u5", "10.0.0.5", "d5", "s1", now.Add(-299*time.Millisecond), 7), false, RiskReasonPageTokenYoung)
	// The same token becomes good once old enough (it was used once).
	clock.Advance(time.Second)
	riskWant(t, hook, pageIn("u5", "10.0.0.5", "d5", "s1", now.Add(-299*time.Millisecond), 7), true, "")
	now = clock.Now()
	// Reused: by a second account at once; by its own account past the
	// allowed uses.
	tok := pageIn("u6", "10.0.0.6", "d6", "s1", now.Add(-time.Second), 8)
	riskWant(t, hook, tok, true, "")
	other := tok
	other.UserID = "u7"
	scoreOf(t, c, other, []string{RiskReasonPageTokenReused}, w.PageTokenReused, false)
	riskWant(t, hook, other, false, RiskReasonPageTokenReused)
	// u6 used it once, u7's two attempts counted too: two more by u6 reach
	// RiskPageTokenUsesDefault (5), the next is past it.
	for range 2 {
		riskWant(t, hook, tok, true, "")
	}
	riskWant(t, hook, tok, false, RiskReasonPageTokenReused)
	// Turned off: no page signal at all.
	off, err := NewRiskHook(RiskConfig{PageTokenOff: true, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	scoreOf(t, off.(*riskChain), bad, none, 0, true)
	// Weights and the threshold are settings: a missing token denies when
	// its weight reaches the threshold; a negative weight removes one.
	strict, err := NewRiskHook(RiskConfig{ScoreDeny: 30, Weights: RiskWeights{PageTokenYoung: -1}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	riskWant(t, strict, riskIn("u8", "10.0.0.8", "d8"), false, RiskReasonPageTokenMissing)
	scoreOf(t, strict.(*riskChain), pageIn("u8", "10.0.0.8", "d8", "s1", now, 9), []string{RiskReasonPageTokenYoung}, 0, true)
}

// TestRiskScoreCombines: a missing token with a crowded address is denied
// (each alone is not); a household of 3 accounts on one address with
// tokens is never denied; a farm of 50 accounts on one device is refused
// past the configured count even with good tokens.
func TestRiskScoreCombines(t *testing.T) {
	clock := newAnswerClock()
	hook, err := NewRiskHook(RiskConfig{AccountsPerDevice: 5, DevicesPerIP: 3, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := hook.(*riskChain)
	w := RiskWeightsDefault
	now := clock.Now()
	for i := range 3 {
		riskWant(t, hook, pageIn(fmt.Sprintf("home%d", i), "192.168.1.7", fmt.Sprintf("phone%d", i), "s1", now.Add(-2*time.Second), byte(i)), true, "")
	}
	// The household again checking out without tokens.
	for i := range 3 {
		riskWant(t, hook, onRoute(riskIn(fmt.Sprintf("home%d", i), "192.168.1.7", fmt.Sprintf("phone%d", i)), "checkout"), true, "")
	}
	// A fourth device on the address: crowded; with a token it passes,
	// a checkout without one is denied.
	scoreOf(t, c, pageIn("guest", "192.168.1.7", "phone3", "s1", now.Add(-2*time.Second), 10), []string{RiskReasonIPDevices}, w.IPDevices, true)
	guest := onRoute(riskIn("guest", "192.168.1.7", "phone3"), "checkout")
	scoreOf(t, c, guest, []string{RiskReasonIPDevices, RiskReasonPageTokenMissing}, w.IPDevices+w.PageTokenMissing, false)
	riskWant(t, hook, guest, false, RiskReasonIPDevices)
	// The farm: 50 accounts on one phone, each from its own address, each
	// with its own good token.
	allowed := 0
	for i := range 50 {
		in := pageIn(fmt.Sprintf("farm%02d", i), fmt.Sprintf("10.1.%d.1", i), "farm-phone", "s1", now.Add(-2*time.Second), byte(100+i))
		v := hook.Check(context.Background(), in)
		if v.Allow {
			allowed++
		} else if v.Reason != RiskReasonDeviceAccounts {
			t.Fatalf("farm account %d denied for %q; want %q", i, v.Reason, RiskReasonDeviceAccounts)
		}
	}
	if allowed != 5 {
		t.Fatalf("farm accounts allowed on one device = %d; want 5", allowed)
	}
}

// TestRiskScoreConcurrent: many goroutines reserve with tokens at once;
// the decisions are exact: every household account allowed, every reuse
// by another account denied, each token allowed exactly its uses.
func TestRiskScoreConcurrent(t *testing.T) {
	clock := newAnswerClock()
	hook, err := NewRiskHook(RiskConfig{AccountsPerDevice: 5, DevicesPerIP: 30, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	const goroutines, tokens = 16, 64
	var allowed, reusedDenied atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range tokens {
				// Every goroutine uses every token as user "owner<i>" ...
				in := pageIn(fmt.Sprintf("owner%d", i), fmt.Sprintf("10.2.%d.1", i), fmt.Sprintf("p%d", i), "s1", now.Add(-time.Second), byte(i))
				if hook.Check(context.Background(), in).Allow {
					allowed.Add(1)
				}
				// ... and as a thief of its own.
				in.UserID = fmt.Sprintf("thief%d-%d", g, i)
				in.DeviceID = fmt.Sprintf("t%d-%d", g, i)
				in.IP = fmt.Sprintf("10.3.%d.%d", g, i)
				if v := hook.Check(context.Background(), in); !v.Allow && v.Reason == RiskReasonPageTokenReused {
					reusedDenied.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	// The first use of a token may be a thief's (the race decides who
	// comes first); then the owner's uses are all reuses. Either way at
	// most RiskPageTokenUsesDefault attempts per token pass.
	if got, max := allowed.Load(), int64(tokens*RiskPageTokenUsesDefault); got > max || got == 0 {
		t.Fatalf("owner attempts allowed = %d; want 1..%d", got, max)
	}
	thievesAllowed := int64(goroutines*tokens) - reusedDenied.Load()
	if thievesAllowed+allowed.Load() > int64(tokens*RiskPageTokenUsesDefault) {
		t.Fatalf("attempts allowed per token: %d owners + %d thieves over %d tokens; want at most %d a token",
			allowed.Load(), thievesAllowed, tokens, RiskPageTokenUsesDefault)
	}
}

// TestRiskPageSeenBounded: the tokens remembered are bounded.
func TestRiskPageSeenBounded(t *testing.T) {
	const keysMax = 512
	hook, err := NewRiskHook(RiskConfig{KeysMax: keysMax})
	if err != nil {
		t.Fatal(err)
	}
	c := hook.(*riskChain)
	now := time.Now()
	for i := range 20_000 {
		in := pageIn("u", "10.0.0.1", "d", "s1", now.Add(-time.Second), 0)
		in.Page.Nonce[1], in.Page.Nonce[2] = byte(i), byte(i>>8)
		c.Check(context.Background(), in)
	}
	// An eviction runs in the background: up to hardMax (an eighth over
	// keysMax) may be remembered meanwhile, and it ends within keysMax.
	if n, hard := c.pages.users.Len(), c.pages.users.hardMax(); int64(n) > hard {
		t.Fatalf("tokens remembered = %d; want at most %d (%d and an eighth)", n, hard, keysMax)
	}
	c.pages.users.evict()
	if n := c.pages.users.Len(); n > keysMax {
		t.Fatalf("tokens remembered after the eviction = %d; want at most %d", n, keysMax)
	}
}

// riskEngine opens an engine on a memory inventory with hook and clock;
// redisAddr, when set, keeps its records there.
func riskEngine(t *testing.T, hook RiskHook, clock *answerClock, redisAddr string) *Engine {
	t.Helper()
	store := inventory.NewMemory(inventory.Options{Now: clock.Now})
	e, err := Open(context.Background(), Options{Store: store, Risk: hook, Now: clock.Now, RedisAddr: redisAddr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); store.Close() })
	ctx := context.Background()
	if _, err := e.LoadCatalog(ctx, Catalog{
		Stores:   []Store{{StoreID: "s1", Name: "静安店", City: "上海"}},
		Products: []Product{{SKUID: "k1", Title: "羊毛大衣", Price: 59900, Images: []string{}}},
		Listings: []Listing{{StoreID: "s1", SKUID: "k1", Price: 49900, OnHand: 1000}},
	}); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestRiskAccountAge: a sale's min_account_age_seconds refuses accounts
// whose first session is younger (40300, account_young), allows older
// ones and accounts never recorded; the server's default applies to sales
// without their own; a later login does not make an account younger.
func TestRiskAccountAge(t *testing.T) {
	clock := newAnswerClock()
	hook, err := NewRiskHook(RiskConfig{MinAccountAge: 10 * time.Minute, PageTokenOff: true, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e := riskEngine(t, hook, clock, "")
	ctx := context.Background()
	now := clock.Now()
	for _, sp := range []FlashSaleSpec{
		{SaleID: "strict", MinAccountAgeSeconds: 3600},
		{SaleID: "plain"},
	} {
		sp.StoreID, sp.SKUID, sp.Price, sp.Quantity = "s1", "k1", 100, 100
		sp.StartsAt, sp.EndsAt = now.Add(-time.Minute), now.Add(24*time.Hour)
		if _, err := e.CreateFlashSale(ctx, sp); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.CreateFlashSale(ctx, FlashSaleSpec{SaleID: "bad", StoreID: "s1", SKUID: "k1", Price: 1, Quantity: 1,
		StartsAt: now, EndsAt: now.Add(time.Hour), MinAccountAgeSeconds: -1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a negative min_account_age_seconds: %v; want ErrInvalid", err)
	}
	first, err := e.AccountSeen(ctx, "veteran")
	if err != nil || !first.Equal(time.UnixMilli(now.UnixMilli())) {
		t.Fatalf("AccountSeen(veteran) = %v, %v; want %v", first, err, now)
	}
	reserve := func(user, sale string) error {
		_, err := e.ReserveFlash(ctx, Attempt{UserID: user, IP: "10.0.0.1", DeviceID: "d-" + user}, sale, 1, "")
		return err
	}
	wantDenied := func(user, sale string) {
		t.Helper()
		var re *RiskError
		if err := reserve(user, sale); !errors.As(err, &re) || re.Reason != RiskReasonAccountYoung {
			t.Fatalf("reserve of %s in %s: %v; want a risk denial %q", user, sale, err, RiskReasonAccountYoung)
		}
	}
	wantOK := func(user, sale string) {
		t.Helper()
		if err := reserve(user, sale); err != nil {
			t.Fatalf("reserve of %s in %s: %v; want it taken", user, sale, err)
		}
	}
	// At once: the veteran is new too.
	wantDenied("veteran", "plain")
	clock.Advance(30 * time.Minute)
	if _, err := e.AccountSeen(ctx, "newcomer"); err != nil {
		t.Fatal(err)
	}
	// A second login does not restart the clock.
	if again, err := e.AccountSeen(ctx, "veteran"); err != nil || !again.Equal(first) {
		t.Fatalf("AccountSeen(veteran) again = %v, %v; want %v", again, err, first)
	}
	wantOK("veteran", "plain")      // 30 min >= the default 10 min
	wantDenied("veteran", "strict") // 30 min < the sale's hour
	wantDenied("newcomer", "plain")
	wantOK("ghost", "strict") // no first session recorded: not judged
	clock.Advance(31 * time.Minute)
	wantOK("veteran", "strict")
	wantOK("newcomer", "plain")
	st, err := e.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.RiskDenials[RiskReasonAccountYoung]; n != 3 {
		t.Fatalf("stats risk denials %q = %d; want 3", RiskReasonAccountYoung, n)
	}
}

// TestAccountSeenSharedByNodes: two engines sharing Redis records agree
// on an account's first session, whichever node saw it first; concurrent
// first logins on both nodes record one time.
func TestAccountSeenSharedByNodes(t *testing.T) {
	srv := redistest.Start(t)
	clock := newAnswerClock()
	a := riskEngine(t, AllowAll(), clock, srv.Addr)
	b := riskEngine(t, AllowAll(), clock, srv.Addr)
	ctx := context.Background()
	const users = 50
	var wg sync.WaitGroup
	seen := make([][2]time.Time, users)
	for i := range users {
		for n, e := range []*Engine{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tm, err := e.AccountSeen(ctx, fmt.Sprintf("user-%d", i))
				if err != nil {
					t.Error(err)
				}
				seen[i][n] = tm
			}()
		}
	}
	wg.Wait()
	for i := range users {
		if !seen[i][0].Equal(seen[i][1]) {
			t.Fatalf("user-%d first seen %v on a, %v on b; want one time", i, seen[i][0], seen[i][1])
		}
	}
	clock.Advance(time.Hour)
	if _, err := a.AccountSeen(ctx, "late"); err != nil {
		t.Fatal(err)
	}
	ms, err := b.accountFirstSeen(ctx, "late")
	if err != nil || ms != clock.Now().UnixMilli() {
		t.Fatalf("b reads late's first session as %d, %v; want %d", ms, err, clock.Now().UnixMilli())
	}
}

// TestRiskSignalsReachTheWebhook: the webhook receives every signal, the
// page token's state, age and uses, the account's age and the minimum
// that applied, and the score, through a real reserve of the engine.
func TestRiskSignalsReachTheWebhook(t *testing.T) {
	srv, got, _ := riskServer(t)
	clock := newAnswerClock()
	hook, err := NewRiskHook(RiskConfig{DevicesPerIP: 1, WebhookURL: srv.URL, WebhookTimeout: 5 * time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e := riskEngine(t, hook, clock, "")
	ctx := context.Background()
	now := clock.Now()
	if _, err := e.CreateFlashSale(ctx, FlashSaleSpec{SaleID: "f1", StoreID: "s1", SKUID: "k1", Price: 100, Quantity: 10,
		StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour), MinAccountAgeSeconds: 60}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.AccountSeen(ctx, "allow"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	a := Attempt{UserID: "allow", IP: "10.0.0.1", DeviceID: "d1"}
	a.Page = PageView{State: PageTokenSigned, IssuedMs: clock.Now().Add(-1500 * time.Millisecond).UnixMilli(), StoreID: "s1"}
	if _, err := e.ReserveFlash(ctx, a, "f1", 1, ""); err != nil {
		t.Fatal(err)
	}
	want := riskWebhookRequest{UserID: "allow", IP: "10.0.0.1", DeviceID: "d1", Route: "flash_reserve", SaleID: "f1", StoreID: "s1",
		IPDevices: 1, PageToken: "ok", PageTokenAgeMs: 1500, PageTokenUses: 1,
		AccountAgeMs: 120_000, MinAccountAgeMs: 60_000, Signals: []string{}, Score: 0, ScoreDeny: RiskScoreDenyDefault}
	if first := <-got; !reflect.DeepEqual(first, want) {
		t.Fatalf("webhook got %+v; want %+v", first, want)
	}
	// A second device on the address: a weak signal, sent with its score.
	a.DeviceID = "d2"
	a.Page.Nonce[0] = 1
	if _, err := e.ReserveFlash(ctx, a, "f1", 1, ""); err != nil {
		t.Fatal(err)
	}
	second := <-got
	if !reflect.DeepEqual(second.Signals, []string{RiskReasonIPDevices}) || second.Score != RiskWeightsDefault.IPDevices ||
		second.IPDevices != 2 || second.PageToken != "ok" {
		t.Fatalf("webhook got %+v; want ip_devices 2 (signal), page token ok, score %d", second, RiskWeightsDefault.IPDevices)
	}
	// With an expired token as well the two weak signals deny together,
	// before the webhook is asked.
	a.Page.IssuedMs = clock.Now().Add(-time.Hour).UnixMilli()
	a.Page.Nonce[0] = 2
	var re *RiskError
	if _, err := e.ReserveFlash(ctx, a, "f1", 1, ""); !errors.As(err, &re) || re.Reason != RiskReasonIPDevices {
		t.Fatalf("reserve with a crowded address and an expired token: %v; want denied for %q", err, RiskReasonIPDevices)
	}
	select {
	case r := <-got:
		t.Fatalf("the webhook was asked about a denied attempt: %+v", r)
	default:
	}
}

// TestJudgesPageViews: the gateway checks a reserve's page token only
// when the risk hook reads it: the built-in hook with its page token on,
// or any other hook (it may read Attempt.Page); not the built-in hook
// with risk.page_token_off, nor an engine without a hook.
func TestJudgesPageViews(t *testing.T) {
	hook := func(cfg RiskConfig) RiskHook {
		h, err := NewRiskHook(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, tc := range []struct {
		name string
		risk RiskHook
		want bool
	}{
		{"built-in, page token on", hook(RiskConfig{}), true},
		{"built-in, page token off", hook(RiskConfig{PageTokenOff: true}), false},
		{"another hook", AllowAll(), true},
		{"no hook", nil, false},
	} {
		e := &Engine{risk: tc.risk}
		if got := e.JudgesPageViews(); got != tc.want {
			t.Errorf("%s: JudgesPageViews() = %v; want %v", tc.name, got, tc.want)
		}
	}
}
