package invtest

import (
	"testing"

	"github.com/anishathalye/porcupine"

	"github.com/surge-retail/surge/inventory"
)

func op(client int, call, ret int64, in linIn, out linOut) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

// TestLinCheckerCatchesBrokenHistories proves the linearizability check can
// fail: hand-written histories that oversell or read a value no order
// explains are refused, and their correct twins accepted.
func TestLinCheckerCatchesBrokenHistories(t *testing.T) {
	reserve := func(q int64) linIn { return linIn{kind: linReserve, qty: q} }
	read := linIn{kind: linRead}
	cases := []struct {
		name string
		ok   bool
		ops  []porcupine.Operation
	}{
		{"two sequential reserves of the last unit both succeed", false, []porcupine.Operation{
			op(0, 1, 2, reserve(1), linOut{ok: true}),
			op(1, 3, 4, reserve(1), linOut{ok: true}),
		}},
		{"the second fails", true, []porcupine.Operation{
			op(0, 1, 2, reserve(1), linOut{ok: true}),
			op(1, 3, 4, reserve(1), linOut{ok: false}),
		}},
		{"concurrent reserves of the last unit both succeed", false, []porcupine.Operation{
			op(0, 1, 4, reserve(1), linOut{ok: true}),
			op(1, 2, 3, reserve(1), linOut{ok: true}),
		}},
		{"sold out while a unit was available", false, []porcupine.Operation{
			op(0, 1, 2, reserve(1), linOut{ok: false}),
		}},
		{"stale read after a reserve returned", false, []porcupine.Operation{
			op(0, 1, 2, reserve(1), linOut{ok: true}),
			op(1, 3, 4, read, linOut{available: 1}),
		}},
		{"read concurrent with the reserve may see either", true, []porcupine.Operation{
			op(0, 1, 4, reserve(1), linOut{ok: true}),
			op(1, 2, 3, read, linOut{available: 1}),
			op(2, 2, 3, read, linOut{available: 0}),
		}},
		{"a read goes back in time", false, []porcupine.Operation{
			op(0, 1, 10, reserve(1), linOut{ok: true}),
			op(1, 2, 3, read, linOut{available: 0}),
			op(1, 4, 5, read, linOut{available: 1}),
		}},
		{"a release makes the unit available again", true, []porcupine.Operation{
			op(0, 1, 2, reserve(1), linOut{ok: true}),
			op(0, 3, 4, linIn{kind: linRelease, qty: 1}, linOut{}),
			op(1, 5, 6, reserve(1), linOut{ok: true}),
		}},
	}
	for _, c := range cases {
		if got := porcupine.CheckOperations(linModel(1), c.ops); got != c.ok {
			t.Errorf("%s: linearizable = %v; want %v", c.name, got, c.ok)
		}
	}
}

// TestLinCheckerCatchesBrokenRecordedHistory records a real concurrent
// history, checks it passes, then appends a read that contradicts it and
// checks the result fails.
func TestLinCheckerCatchesBrokenRecordedHistory(t *testing.T) {
	s := inventory.NewMemory(inventory.Options{})
	defer s.Close()
	ops := recordHistory(t, s, 42)
	m := linModel(linSupply)
	if !porcupine.CheckOperations(m, ops) {
		t.Fatal("recorded history is not linearizable")
	}
	p, err := s.Pool(t.Context(), "lin:p")
	if err != nil {
		t.Fatal(err)
	}
	last := int64(0)
	for _, o := range ops {
		last = max(last, o.Return)
	}
	good := append(ops[:len(ops):len(ops)], op(99, last+1, last+2, linIn{kind: linRead}, linOut{available: p.Available}))
	if !porcupine.CheckOperations(m, good) {
		t.Fatal("history with a correct final read is not linearizable")
	}
	bad := append(ops[:len(ops):len(ops)], op(99, last+1, last+2, linIn{kind: linRead}, linOut{available: p.Available + 1}))
	if porcupine.CheckOperations(m, bad) {
		t.Fatal("history with a wrong final read passed the check")
	}
}
