package wechatpay

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestNonceSetFullRefusesRatherThanForgets(t *testing.T) {
	s := newNonceSet(3)
	t0 := time.Unix(1_700_000_000, 0)
	window := 5 * time.Minute
	add := func(nonce string, ts, now time.Time) error { return s.add(nonce, ts.Add(window), now) }
	for i, ts := range []time.Time{t0, t0.Add(time.Minute), t0.Add(2 * time.Minute)} {
		if err := add(fmt.Sprint("n", i), ts, t0.Add(2*time.Minute)); err != nil {
			t.Fatalf("add(n%d) = %v", i, err)
		}
	}
	if err := add("n3", t0.Add(2*time.Minute), t0.Add(2*time.Minute)); !errors.Is(err, ErrNoncesFull) {
		t.Fatalf("add to a full set = %v; want ErrNoncesFull", err)
	}
	if err := add("n0", t0, t0.Add(2*time.Minute)); !errors.Is(err, ErrReplayedNonce) {
		t.Fatalf("add(n0) again = %v; want ErrReplayedNonce (a live nonce is not forgotten when full)", err)
	}
	// n0 lives until t0+5m inclusive; a moment later it is forgotten
	if err := add("n3", t0.Add(5*time.Minute), t0.Add(5*time.Minute)); !errors.Is(err, ErrNoncesFull) {
		t.Fatalf("add at n0's deadline = %v; want ErrNoncesFull", err)
	}
	if err := add("n3", t0.Add(5*time.Minute), t0.Add(5*time.Minute+time.Second)); err != nil {
		t.Fatalf("add after n0 expired = %v", err)
	}
	if got := s.len(); got != 3 {
		t.Fatalf("len = %d; want 3", got)
	}
	// everything expires
	if err := add("n9", t0.Add(time.Hour), t0.Add(time.Hour)); err != nil || s.len() != 1 {
		t.Fatalf("add an hour later = %v, len %d; want nil, 1", err, s.len())
	}
}

// Expiry follows the notification's timestamp, not the order of arrival.
func TestNonceSetExpiresByTimestamp(t *testing.T) {
	s := newNonceSet(10)
	t0 := time.Unix(1_700_000_000, 0)
	if err := s.add("late", t0.Add(9*time.Minute), t0); err != nil {
		t.Fatal(err)
	}
	if err := s.add("early", t0.Add(1*time.Minute), t0); err != nil {
		t.Fatal(err)
	}
	if err := s.add("x", t0.Add(time.Hour), t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.add("late", t0.Add(9*time.Minute), t0.Add(2*time.Minute)); !errors.Is(err, ErrReplayedNonce) {
		t.Fatalf("late = %v; want still remembered", err)
	}
	if err := s.add("early", t0.Add(2*time.Minute), t0.Add(2*time.Minute)); err != nil {
		t.Fatalf("early = %v; want forgotten", err)
	}
}
