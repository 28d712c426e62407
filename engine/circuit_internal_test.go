package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
)

// TestCircuitStates: failures in a row open the circuit (a success
// between them starts the count again); open, calls are refused without
// running; after OpenFor one probe goes through: a canceled probe neither
// closes nor reopens it, a failed one reopens it, a good one closes it.
func TestCircuitStates(t *testing.T) {
	const openFor = 50 * time.Millisecond
	c := newCircuit("test", CircuitOptions{Failures: 3, OpenFor: openFor})
	fail := errors.New("connection refused")
	call := func(err error) error {
		done, cerr := c.enter()
		if cerr != nil {
			return cerr
		}
		c.exit(done, err, err != nil && !excluded(err))
		return err
	}
	wantState := func(want string) {
		t.Helper()
		if got := c.snapshot().State; got != want {
			t.Fatalf("state = %s; want %s", got, want)
		}
	}
	call(fail)
	call(fail)
	call(nil) // resets the count
	call(fail)
	call(fail)
	wantState("closed")
	call(fail)
	wantState("open")
	if err := call(nil); !errors.Is(err, ErrCircuitOpen) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("call with the circuit open = %v; want ErrCircuitOpen", err)
	}
	if err := c.refusing(); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("refusing with the circuit open = %v", err)
	}
	time.Sleep(openFor + 10*time.Millisecond) // the open period is the breaker's own clock
	if err := call(context.Canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("a canceled probe = %v", err)
	}
	wantState("half-open")
	call(fail)
	wantState("open")
	time.Sleep(openFor + 10*time.Millisecond)
	if err := call(nil); err != nil {
		t.Fatalf("probe: %v", err)
	}
	wantState("closed")
	if s := c.snapshot(); s.Opens != 2 || s.Failures != 6 {
		t.Fatalf("snapshot = %+v; want 2 opens, 6 failures", s)
	}
}

// countingRecords counts the calls that reach the records.
type countingRecords struct {
	records.Records
	calls int
}

func (c *countingRecords) Get(ctx context.Context, key string) ([]byte, bool, error) {
	c.calls++
	return c.Records.Get(ctx, key)
}

// TestGuardedWrappersKeepTheirInterfaces: the records behind their
// circuit stay records.Local only when they were (it decides how
// idempotency claims keys), the order stores stay orders.Scanner, and
// with the circuit open the tagged records, the sets, the idempotency
// records and the orders answer ErrCircuitOpen without a call.
func TestGuardedWrappersKeepTheirInterfaces(t *testing.T) {
	ctx := context.Background()
	mem := records.NewMemory()
	defer mem.Close()
	c := newCircuit(BackendRecords, CircuitOptions{Failures: 1, OpenFor: time.Hour})
	if _, ok := guardRecords(mem, c).(records.Local); !ok {
		t.Fatal("memory records behind the circuit lost records.Local")
	}
	foreign := &countingRecords{Records: mem}
	g := guardRecords(foreign, c)
	if _, ok := g.(records.Local); ok {
		t.Fatal("records that are not records.Local became one behind the circuit")
	}
	if _, ok := guardOrders(orders.NewRecordsStore(mem), c).(orders.Scanner); !ok {
		t.Fatal("the records' order store behind the circuit lost orders.Scanner")
	}
	type plainOrders struct{ orders.Store }
	if _, ok := guardOrders(plainOrders{orders.NewRecordsStore(mem)}, c).(orders.Scanner); ok {
		t.Fatal("an order store without ScanOrders became an orders.Scanner")
	}

	// One failure opens this circuit (Failures 1).
	done, _ := c.enter()
	c.exit(done, errors.New("connection refused"), true)
	if c.snapshot().State != "open" {
		t.Fatalf("circuit = %+v; want open", c.snapshot())
	}
	idem := NewIdempotency(g, IdempotencyOptions{})
	_, _, err := idem.Do(ctx, "u1", "k1", [32]byte{}, func() (int, []byte) { return 200, nil })
	tagged := &guardedTagged{t: records.TaggedOf(mem), c: c}
	_, _, terr := tagged.GetTagged(ctx, "s1", "pay/r1")
	sets := &guardedSets{s: records.SetsOf(mem), c: c}
	_, serr := sets.AddToSet(ctx, "s1", "reg", "u1", nil, 10)
	_, _, oerr := guardOrders(orders.NewRecordsStore(foreign), c).Get(ctx, "o1")
	for what, err := range map[string]error{"idempotency": err, "tagged": terr, "sets": serr, "orders": oerr} {
		if !errors.Is(err, ErrCircuitOpen) || !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with the records circuit open = %v; want ErrCircuitOpen", what, err)
		}
	}
	if foreign.calls != 0 {
		t.Fatalf("%d calls reached the records with the circuit open; want 0", foreign.calls)
	}
}

// failingScan is records whose scans fail as a backend does.
type failingScan struct {
	records.Records
	err error
}

func (f failingScan) Scan(context.Context, string, func(string, []byte) error) error { return f.err }

// TestGuardedScansJudgeOnlyTheBackend: an error from a scan's callback is
// the caller's: it comes back as it was, and however often it happens
// the circuit stays closed; the backend's own scan errors open it.
func TestGuardedScansJudgeOnlyTheBackend(t *testing.T) {
	ctx := context.Background()
	mem := records.NewMemory()
	defer mem.Close()
	if err := mem.Put(ctx, "k/1", []byte("v")); err != nil {
		t.Fatal(err)
	}
	c := newCircuit(BackendRecords, CircuitOptions{Failures: 2, OpenFor: time.Hour})
	g := guardRecords(mem, c).(*guardedLocalRecords)
	mine := errors.New("stop here")
	for i := 0; i < 5; i++ {
		if err := g.Scan(ctx, "k/", func(string, []byte) error { return mine }); err != mine {
			t.Fatalf("Scan = %v; want the callback's own error", err)
		}
		if err := g.ScanFrom(ctx, "k/", "", func(string, []byte) error { return mine }); err != mine {
			t.Fatalf("ScanFrom = %v; want the callback's own error", err)
		}
	}
	if s := c.snapshot(); s.State != "closed" || s.Failures != 0 {
		t.Fatalf("after callback errors: %+v; want closed, no failures", s)
	}
	down := guardRecords(failingScan{Records: mem, err: errors.New("connection refused")}, c)
	for i := 0; i < 2; i++ {
		if err := down.Scan(ctx, "k/", func(string, []byte) error { return nil }); err == nil {
			t.Fatal("a failing backend's scan answered nil")
		}
	}
	if err := down.Scan(ctx, "k/", func(string, []byte) error { return nil }); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("scan after 2 backend failures = %v; want ErrCircuitOpen", err)
	}
}
