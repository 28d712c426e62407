package engine

import "testing"

// TestSaleGate: a sale admits at most factor × remaining reserve calls at
// once; each sale has its own gate; a shrinking remaining tightens it.
func TestSaleGate(t *testing.T) {
	f1, f2, f3 := &flashState{}, &flashState{}, &flashState{}
	f1.remaining.Store(2)
	for i := 0; i < 8; i++ { // remaining 2 -> 8 slots
		if !f1.admit(4) {
			t.Fatalf("admit %d refused; want 8 admitted", i)
		}
	}
	if f1.admit(4) {
		t.Fatal("9th admit with remaining 2, factor 4: admitted; want refused")
	}
	// Another sale has its own gate.
	f2.remaining.Store(1)
	if !f2.admit(4) {
		t.Fatal("admit of another sale refused")
	}
	// Remaining shrinking tightens the gate for newcomers.
	f1.inflight.Add(-1)
	f1.remaining.Store(1)
	if f1.admit(4) {
		t.Fatal("admit with remaining 1 and 7 in flight: admitted; want refused")
	}
	// Huge remaining does not overflow.
	f3.remaining.Store(1 << 62)
	if !f3.admit(4) {
		t.Fatal("admit with huge remaining refused")
	}
}
