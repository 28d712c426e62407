package records

import (
	"context"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/surge-retail/surge/internal/pebblefail"
)

// TestPebbleWALErrorFailsWrites: a write whose WAL cannot be written or
// synced is refused with ErrUnavailable, never acknowledged, and every
// later write fails fast (the inventory's policy, pebblefail); nothing
// panics. What was acknowledged before stays readable.
func TestPebbleWALErrorFailsWrites(t *testing.T) {
	faults := &pebblefail.WALFaults{}
	rec, err := OpenPebble("db", Options{FS: errorfs.Wrap(vfs.NewMem(), faults)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := rec.Put(ctx, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	faults.On.Store(true)
	if err := rec.Put(ctx, "b", []byte("2")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Put with a failing WAL = %v; want ErrUnavailable", err)
	}
	faults.On.Store(false)
	if _, err := rec.PutIfAbsent(ctx, "c", []byte("3")); !errors.Is(err, ErrUnavailable) || !errors.Is(err, pebblefail.ErrFailed) {
		t.Fatalf("PutIfAbsent after a failed commit = %v; want ErrUnavailable and pebblefail.ErrFailed", err)
	}
	if v, ok, err := rec.Get(ctx, "a"); err != nil || !ok || string(v) != "1" {
		t.Fatalf("Get(acknowledged) = %q, %v, %v", v, ok, err)
	}
	if err := rec.Close(); err == nil {
		t.Fatal("Close after a failed commit = nil; want the failure reported")
	}
}

// TestLocalValue: users of the same local Records share a value; other
// Records have their own.
func TestLocalValue(t *testing.T) {
	a, b := NewMemory().(Local), NewMemory().(Local)
	type key struct{}
	n := 0
	mk := func() any { n++; return new(int) }
	if a.Value(key{}, mk) != a.Value(key{}, mk) || n != 1 {
		t.Fatalf("Value made %d values for one key", n)
	}
	if a.Value(key{}, mk) == b.Value(key{}, mk) {
		t.Fatal("two Records share a value")
	}
	if _, err := OpenRedis(context.Background(), Options{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("OpenRedis without an address = %v; want ErrInvalid", err)
	}
}
