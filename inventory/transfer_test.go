package inventory_test

import (
	"context"
	"testing"

	"github.com/surge-retail/surge/inventory"
)

// TestPebbleTransfersSurviveReopen: the transfer totals are durable with
// the pool, so a transfer in flight when the process died is completed
// once after a restart, and a replayed total adds nothing.
func TestPebbleTransfersSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := mustOpen(t, dir, inventory.PebbleOptions{})
	for _, p := range []string{"a:p", "b:p"} {
		if err := s.CreatePool(ctx, p, 10); err != nil {
			t.Fatal(err)
		}
	}
	if _, sent, err := s.Send(ctx, "a:p", "b:p", 3); err != nil || sent != 3 {
		t.Fatalf("Send = %d, %v", sent, err)
	}
	if n, err := s.Receive(ctx, "b:p", "a:p", 3); err != nil || n != 3 {
		t.Fatalf("Receive = %d, %v", n, err)
	}
	if _, sent, err := s.Send(ctx, "a:p", "b:p", 4); err != nil || sent != 7 {
		t.Fatalf("Send = %d, %v", sent, err)
	}
	// A later feed rewrites the pool; the totals must stay.
	if _, err := s.SetOnHand(ctx, "b:p", 1, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, inventory.PebbleOptions{})
	defer s.Close()
	la, err := s.Ledger(ctx, "a:p")
	if err != nil || la.Sent["b:p"] != 7 || la.Available != 3 {
		t.Fatalf("Ledger(a:p) after reopen = %+v, %v; want 3 available, 7 sent", la, err)
	}
	if n, err := s.Receive(ctx, "b:p", "a:p", 3); err != nil || n != 0 {
		t.Fatalf("Receive(3) after reopen = %d, %v; want 0 (received before)", n, err)
	}
	if n, err := s.Receive(ctx, "b:p", "a:p", la.Sent["b:p"]); err != nil || n != 4 {
		t.Fatalf("Receive(7) after reopen = %d, %v; want 4", n, err)
	}
	lb, err := s.Ledger(ctx, "b:p")
	if err != nil || lb.Available != 18 || lb.Received["a:p"] != 7 {
		t.Fatalf("Ledger(b:p) = %+v, %v; want 18 available (10+3+4+1), received 7", lb, err)
	}
}
