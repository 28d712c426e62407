package engine_test

import (
	"context"
	"errors"
	"testing"

	"github.com/surge-retail/surge/engine"
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
