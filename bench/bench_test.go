package bench

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestRunSmall runs every in-process scenario group briefly: it proves
// that the harness measures real work (non-zero figures on both sides) and
// renders the page; it asserts nothing about speed.
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH")
	}
	res, err := Run(context.Background(), Options{Duration: 300 * time.Millisecond, Conns: 4, Callers: []int{1, 4}})
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if len(res.Tables) != 4 {
		t.Fatalf("tables = %d; want http, pebble, redis, buckets", len(res.Tables))
	}
	for _, tb := range res.Tables {
		for _, r := range tb.Rows {
			if strings.HasPrefix(r.Key, "buckets/1-") && r.Key != "buckets/1-share-max" {
				continue // one bucket: the other masters may have nothing
			}
			if r.Surge <= 0 || r.Floor <= 0 {
				t.Errorf("%s / %s: surge %.0f floor %.0f; want both > 0", tb.Title, r.Scenario, r.Surge, r.Floor)
			}
		}
	}
	if len(res.Latency) != 4 {
		t.Errorf("latency rows = %d; want 4", len(res.Latency))
	}
	for _, l := range res.Latency {
		if l.Successes == 0 || l.P50 <= 0 || l.P99 < l.P50 || l.Max < l.P99 {
			t.Errorf("latency %s at %d%%: %+v", l.Scenario, l.LoadPct, l.Latency)
		}
	}
	md := res.Markdown()
	for _, want := range []string{"| HTTP store page (in process) | ", "| HTTP flash reserve, pebble (in process) | ", "| HTTP flash reserve, redis (in process) | ", "p99.9",
		"| HTTP flash reserve, memory, risk signals on vs off (reserves per CPU-second) | ", "Against a one-key INCR script"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}

// TestOpenLoopBounds: a run whose arrivals would not fit the bound is
// refused before anything is allocated or sent.
func TestOpenLoopBounds(t *testing.T) {
	noop := func(int, int, *fasthttp.Request) {}
	ok := func(*fasthttp.Response) bool { return true }
	for _, c := range []struct {
		rate float64
		d    time.Duration
	}{{1e6, time.Hour}, {0, time.Second}, {100, 0}, {2e6, time.Second}} {
		if _, err := OpenLoop(context.Background(), "127.0.0.1:1", c.rate, c.d, noop, ok); err == nil {
			t.Errorf("OpenLoop(rate %.0f, %v) = nil error; want it refused", c.rate, c.d)
		}
	}
}

// TestUnknownGroup: a misspelt group is refused before anything starts,
// naming the group and the ones there are.
func TestUnknownGroup(t *testing.T) {
	for _, only := range [][]string{{"htpp"}, {"http", "HTTP"}, {""}, {"http,pebble"}} {
		_, err := Run(context.Background(), Options{Only: only})
		if err == nil || !strings.Contains(err.Error(), "unknown group") || !strings.Contains(err.Error(), "http, pebble, redis, latency, buckets, packages, wrk") {
			t.Errorf("Run(Only: %q) = %v; want an unknown-group error listing the groups", only, err)
		}
	}
	if err := CheckGroups(Groups); err != nil {
		t.Errorf("CheckGroups(Groups) = %v", err)
	}
	if err := CheckGroups(nil); err != nil {
		t.Errorf("CheckGroups(nil) = %v", err)
	}
}

// TestExternalBackends: an unknown or repeated backend is refused before
// anything starts (no wrk, no server).
func TestExternalBackends(t *testing.T) {
	for _, bs := range [][]string{{"mysql"}, {"redis", "redis"}, {"memory", ""}, {"Redis"}} {
		_, err := RunExternal(context.Background(), ExternalOptions{Surge: "/nonexistent/surge", FloorCommand: []string{"/nonexistent/floor"}, Backends: bs})
		if err == nil || !strings.Contains(err.Error(), "unknown or repeated") {
			t.Errorf("RunExternal(Backends: %q) = %v; want it refused as unknown or repeated", bs, err)
		}
	}
}

// TestAlternateRounds: each side runs once a round, in turn (a first in
// even rounds, b first in odd ones), and the row's ratio is the median of
// the rounds' ratios of requests per CPU-second, with each side's
// throughput over all rounds.
func TestAlternateRounds(t *testing.T) {
	var order []string
	spin := func(d time.Duration) int64 { // burns CPU for d, returns work done
		var n int64
		for end := time.Now().Add(d); time.Now().Before(end); n++ {
		}
		return n
	}
	side := func(name string, perSlice int64) func(time.Duration) (Throughput, error) {
		return func(d time.Duration) (Throughput, error) {
			order = append(order, name)
			spin(d)
			return Throughput{Requests: perSlice, Successes: perSlice, Elapsed: d}, nil
		}
	}
	r, err := AlternateRounds(5, 20*time.Millisecond, side("a", 100), side("b", 50))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ""); got != "abbaabbaab" {
		t.Errorf("order %q; want abbaabbaab", got)
	}
	if len(r.Ratios) != 5 || median(r.Ratios) != 0.5 || r.Pooled() != 0.5 {
		t.Errorf("ratios %v, pooled %.2f; want five of 0.5", r.Ratios, r.Pooled())
	}
	if len(r.CPURatios) != 5 {
		t.Fatalf("CPU ratios %v; want 5", r.CPURatios)
	}
	row := r.Row("k", "s", "req/s")
	if row.Ratio() != median(r.CPURatios) || row.Surge != 50/0.02 || row.Floor != 100/0.02 {
		t.Errorf("row %+v: ratio %.3f; want the CPU ratios' median %.3f, surge 2500, floor 5000", row, row.Ratio(), median(r.CPURatios))
	}
	if !strings.Contains(row.Scenario, "5 alternating rounds") {
		t.Errorf("scenario %q does not say how it was measured", row.Scenario)
	}
	if m := median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median of 1,2,3,10 = %v; want 2.5", m)
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median of 1,2,3 = %v; want 2", m)
	}
}
