package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func riskWant(t *testing.T, h RiskHook, in RiskInput, allow bool, reason string) {
	t.Helper()
	v := h.Check(context.Background(), in)
	if v.Allow != allow || v.Reason != reason {
		t.Fatalf("Check(%+v) = %+v; want {Allow:%v Reason:%q}", in, v, allow, reason)
	}
}

func riskIn(user, ip, device string) RiskInput {
	return RiskInput{Attempt: Attempt{UserID: user, IP: ip, DeviceID: device, Route: "flash_reserve"}, SaleID: "sale1", StoreID: "s1"}
}

func TestRiskAllowAll(t *testing.T) {
	riskWant(t, AllowAll(), riskIn("u", "1.1.1.1", ""), true, "")
	h, err := NewRiskHook(RiskConfig{PageTokenOff: true})
	if err != nil {
		t.Fatal(err)
	}
	riskWant(t, h, riskIn("u", "1.1.1.1", ""), true, "")
}

func TestRiskBadConfig(t *testing.T) {
	for _, cfg := range []RiskConfig{
		{UserRate: -1}, {IPRate: math.NaN()}, {UserRate: math.Inf(1)}, {UserBurst: -1},
		{KeysMax: -1}, {WebhookURL: "ftp://risk/x"}, {WebhookURL: "http://"}, {WebhookURL: "::"},
		{WebhookURL: "http://risk", WebhookTimeout: -time.Second}, {WebhookURL: "http://risk", WebhookTimeout: time.Hour},
	} {
		if _, err := NewRiskHook(cfg); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewRiskHook(%+v) = %v; want ErrInvalid", cfg, err)
		}
	}
}

func TestRiskBlocklistAndDevice(t *testing.T) {
	h, err := NewRiskHook(RiskConfig{PageTokenOff: true, Blocklist: []string{"u-bad", " 10.0.0.9 ", "dev-bad", ""}, RequireDevice: true})
	if err != nil {
		t.Fatal(err)
	}
	riskWant(t, h, riskIn("u-bad", "10.0.0.1", "d1"), false, RiskReasonBlocklist)
	riskWant(t, h, riskIn("u1", "10.0.0.9", "d1"), false, RiskReasonBlocklist)
	riskWant(t, h, riskIn("u1", "10.0.0.1", "dev-bad"), false, RiskReasonBlocklist)
	riskWant(t, h, riskIn("u1", "10.0.0.1", ""), false, RiskReasonNoDevice)
	riskWant(t, h, riskIn("u1", "10.0.0.1", "d1"), true, "")
}

func TestRiskTokenBuckets(t *testing.T) {
	clock := newAnswerClock()
	h, err := NewRiskHook(RiskConfig{PageTokenOff: true, UserRate: 2, UserBurst: 3, IPRate: 10, IPBurst: 5, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		riskWant(t, h, riskIn("u1", "10.0.0.1", ""), true, "")
	}
	riskWant(t, h, riskIn("u1", "10.0.0.2", ""), false, RiskReasonRateUser)
	clock.Advance(500 * time.Millisecond) // one token at 2/s
	riskWant(t, h, riskIn("u1", "10.0.0.2", ""), true, "")
	riskWant(t, h, riskIn("u1", "10.0.0.2", ""), false, RiskReasonRateUser)

	// 10.0.0.1 used 3 of its 5 tokens (plus 5 refilled in 500ms, capped
	// at 5): five more users pass, the sixth is stopped by the IP bucket.
	for i := 0; i < 5; i++ {
		riskWant(t, h, riskIn(fmt.Sprint("other", i), "10.0.0.1", ""), true, "")
	}
	riskWant(t, h, riskIn("other9", "10.0.0.1", ""), false, RiskReasonRateIP)

	// Exact under concurrency: a frozen clock and a burst of 50 let
	// exactly 50 of many concurrent attempts through.
	h, err = NewRiskHook(RiskConfig{PageTokenOff: true, UserRate: 1, UserBurst: 50, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if h.Check(context.Background(), riskIn("hot", "10.0.0.1", "")).Allow {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 50 {
		t.Fatalf("allowed %d of 320 attempts; want exactly the burst, 50", n)
	}
}

func TestRiskKeysBounded(t *testing.T) {
	clock := newAnswerClock()
	const keysMax = 64
	h, err := NewRiskHook(RiskConfig{PageTokenOff: true, UserRate: 1, IPRate: 1, KeysMax: keysMax, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5000; i++ {
		h.Check(context.Background(), riskIn(fmt.Sprint("u", i), fmt.Sprint("ip", i), ""))
	}
	c := h.(*riskChain)
	if n, m := c.users.Len(), c.ips.Len(); n > keysMax || m > keysMax {
		t.Fatalf("tracked %d users, %d IPs; want <= %d each", n, m, keysMax)
	}
}

// riskServer is a real HTTP risk service on loopback. It answers by user id.
func riskServer(t *testing.T) (srv *httptest.Server, got chan riskWebhookRequest, release chan struct{}) {
	got = make(chan riskWebhookRequest, 1024)
	release = make(chan struct{})
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in riskWebhookRequest
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		select {
		case got <- in:
		default:
		}
		switch in.UserID {
		case "allow":
			fmt.Fprint(w, `{"allow": true}`)
		case "deny":
			fmt.Fprint(w, `{"allow": false, "reason": "bot_score"}`)
		case "deny-odd":
			fmt.Fprint(w, `{"allow": false, "reason": "Bot Score!! <script>"}`)
		case "slow":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		case "500":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "garbage":
			fmt.Fprint(w, `<html>not json`)
		case "no-allow":
			fmt.Fprint(w, `{"reason": "x"}`)
		case "huge":
			fmt.Fprintf(w, `{"allow": true, "pad": "%s"}`, strings.Repeat("x", 2*riskWebhookRespMax))
		}
	}))
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
		srv.Close()
	})
	return srv, got, release
}

func TestRiskWebhook(t *testing.T) {
	srv, got, _ := riskServer(t)
	for _, failOpen := range []bool{false, true} {
		// A generous timeout for the answering cases, so a loaded machine
		// cannot turn them into timeouts; a short one for "slow".
		h, err := NewRiskHook(RiskConfig{Weights: RiskWeights{FlashPageTokenMissing: 40}, WebhookURL: srv.URL, WebhookTimeout: 5 * time.Second, WebhookFailOpen: failOpen})
		if err != nil {
			t.Fatal(err)
		}
		short, err := NewRiskHook(RiskConfig{PageTokenOff: true, WebhookURL: srv.URL, WebhookFailOpen: failOpen})
		if err != nil {
			t.Fatal(err)
		}
		unavail := Verdict{Allow: failOpen, Reason: RiskReasonWebhookUnavailable}
		for _, tc := range []struct {
			h    RiskHook
			user string
			want Verdict
		}{
			{h, "allow", Verdict{Allow: true}},
			{h, "deny", Verdict{Reason: "bot_score"}},
			{h, "deny-odd", Verdict{Reason: RiskReasonWebhookDeny}},
			{short, "slow", unavail},
			{h, "500", unavail},
			{h, "garbage", unavail},
			{h, "no-allow", unavail},
			{h, "huge", unavail},
		} {
			in := riskIn(tc.user, "10.1.1.1", "dev1")
			in.UserHeld = 2
			if v := tc.h.Check(context.Background(), in); v != tc.want {
				t.Errorf("failOpen=%v: Check(%s) = %+v; want %+v", failOpen, tc.user, v, tc.want)
			}
		}
	}
	// The service saw the attempt as JSON.
	first := <-got
	want := riskWebhookRequest{UserID: "allow", IP: "10.1.1.1", DeviceID: "dev1", Route: "flash_reserve", SaleID: "sale1", StoreID: "s1", UserHeld: 2,
		PageToken: RiskReasonPageTokenMissing, AccountAgeMs: -1,
		Signals: []string{RiskReasonPageTokenMissing}, Score: RiskWeightsDefault.PageTokenMissing, ScoreDeny: RiskScoreDenyDefault}
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("webhook got %+v; want %+v", first, want)
	}

	// A service that is down.
	down := httptest.NewServer(http.NotFoundHandler())
	url := down.URL
	down.Close()
	h, err := NewRiskHook(RiskConfig{PageTokenOff: true, WebhookURL: url, WebhookTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	riskWant(t, h, riskIn("allow", "10.1.1.1", ""), false, RiskReasonWebhookUnavailable)

	// Checks before the webhook answer first: a blocked user never
	// reaches it.
	h, err = NewRiskHook(RiskConfig{PageTokenOff: true, WebhookURL: srv.URL, WebhookTimeout: 5 * time.Second, Blocklist: []string{"allow"}})
	if err != nil {
		t.Fatal(err)
	}
	riskWant(t, h, riskIn("allow", "10.1.1.1", ""), false, RiskReasonBlocklist)
}

// TestRiskWebhookInflightBound: with riskWebhookInflightMax calls stuck in
// the service, one more is not queued: it is answered as unavailable.
func TestRiskWebhookInflightBound(t *testing.T) {
	srv, got, release := riskServer(t)
	h, err := NewRiskHook(RiskConfig{PageTokenOff: true, WebhookURL: srv.URL, WebhookTimeout: riskWebhookTimeoutMax})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < riskWebhookInflightMax; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.Check(context.Background(), riskIn("slow", "10.1.1.1", ""))
		}()
	}
	for i := 0; i < riskWebhookInflightMax; i++ {
		<-got // every call reached the service and is stuck there
	}
	riskWant(t, h, riskIn("allow", "10.1.1.1", ""), false, RiskReasonWebhookUnavailable)
	close(release)
	wg.Wait()
	riskWant(t, h, riskIn("allow", "10.1.1.1", ""), true, "")
}
