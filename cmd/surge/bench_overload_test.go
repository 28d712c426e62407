package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/bench"
)

// TestBenchOverloadSmall runs the overload scenario briefly against this
// tree's `surge serve` in its own process: the counts add up, no pay is
// shed and every pay succeeds, every reserve is admitted, shed with
// Retry-After or refused (none fails), resident memory is read, and the
// page section shows the three targets. It asserts nothing about speed.
func TestBenchOverloadSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts surge serve")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := bench.RunOverload(ctx, bench.OverloadOptions{
		Surge: surgeBinary(t), Storm: 300 * time.Millisecond, Sales: 2, UsersPerSale: 300,
		Pays: 40, HoldSeconds: 2, SettleMax: 2 * time.Second,
	})
	if err != nil {
		t.Fatalf("RunOverload = %v", err)
	}
	if res.PaysShed != 0 || res.PaysOK != 40 || res.PaysFailed != 0 {
		t.Errorf("pays: %d ok, %d shed, %d failed; want 40, 0, 0", res.PaysOK, res.PaysShed, res.PaysFailed)
	}
	if res.Sent < 600 || res.Admitted+res.Shed+res.Refused+res.Errors != res.Sent || res.Errors != 0 || res.Admitted == 0 {
		t.Errorf("reserves: sent %d = admitted %d + shed %d + refused %d + errors %d; want >= 600 sent, some admitted, no errors",
			res.Sent, res.Admitted, res.Shed, res.Refused, res.Errors)
	}
	if res.RSSBeforeKiB <= 0 || res.RSSPeakKiB <= 0 || res.RSSAfterKiB <= 0 || res.Capacity <= 0 || res.LimitMax != 1024 ||
		res.HeapInuseBeforeKiB <= 0 || res.HeapInuseAfterKiB <= 0 {
		t.Errorf("figures missing: %+v", res)
	}
	md := (&bench.Results{Overload: res}).Markdown()
	for _, want := range []string{"## Overload: 5x capacity", "| pays shed | 0 of 40 (0.0%) |", "| admitted reserve p99, from the intended send time |", "| RSS after the sales ("} {
		if !strings.Contains(md, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	t.Logf("%+v", *res)
}
