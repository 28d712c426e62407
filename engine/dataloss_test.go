package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/engine/records"
)

// TestDataLossSeenByTheFirstReserve: right after Redis lost its data (no
// sweep, no /readyz in between), the first reserve of a known sale finds
// its pool gone and is refused as a data loss (503), never "not found";
// Recover resumes, and a second Recover has nothing to do.
func TestDataLossSeenByTheFirstReserve(t *testing.T) {
	_, st, e := redisEngineWithSale(t, "gone")
	ctx := context.Background()
	c := st.Client()
	if err := c.Do(ctx, c.B().Flushall().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	_, err := e.ReserveFlash(ctx, engine.Attempt{UserID: "u1"}, "gone", 1, "")
	if !errors.Is(err, engine.ErrDataLost) || errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("first reserve after the loss = %v; want ErrDataLost", err)
	}
	if e.DataLost() == nil {
		t.Fatal("DataLost() = nil after the loss was seen")
	}
	rc, err := e.Recover(ctx)
	if err != nil || !rc.Recovered || len(rc.Missing) == 0 {
		t.Fatalf("Recover = %+v, %v; want recovered with the sale missing", rc, err)
	}
	if err := e.Ready(ctx); err != nil {
		t.Fatalf("Ready after Recover: %v", err)
	}
	if rc, err := e.Recover(ctx); err != nil || rc.Recovered {
		t.Fatalf("a second Recover = %+v, %v; want nothing to recover", rc, err)
	}
}

// TestRecoveredEpochAdoption: a node adopts a recovered epoch written
// after it opened the records (another node's Recover) and stays ready; a
// recovered epoch older than its own (a replica that missed writes) is a
// data loss.
func TestRecoveredEpochAdoption(t *testing.T) {
	rec := records.NewMemory()
	t.Cleanup(func() { _ = rec.Close() })
	env := openEnv(t, testBackends()[0], func(o *engine.Options) { o.Records = rec })
	ctx := env.ctx
	newer := "r/" + strings.Repeat("v", 23) // tokens start with their time: "v..." sorts last
	if err := rec.Put(ctx, "e/epoch", []byte(newer)); err != nil {
		t.Fatal(err)
	}
	if err := env.e.Ready(ctx); err != nil || env.e.DataLost() != nil {
		t.Fatalf("Ready after another node's recover = %v (lost %+v); want the recovered epoch adopted", err, env.e.DataLost())
	}
	older := "r/" + strings.Repeat("0", 23)
	if err := rec.Put(ctx, "e/epoch", []byte(older)); err != nil {
		t.Fatal(err)
	}
	if err := env.e.Ready(ctx); !errors.Is(err, engine.ErrDataLost) {
		t.Fatalf("Ready with an older recovered epoch = %v; want ErrDataLost", err)
	}
}
