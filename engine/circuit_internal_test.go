package engine

import (
	"context"
	"errors"
	"testing"
	"time"
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
