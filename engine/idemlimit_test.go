package engine_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/engine/records"
)

// writeCounter counts the writes of the records it wraps. It hides the
// optional interfaces of the records (records.Local above all), so an
// Idempotency over it claims keys in the records as over Redis.
type writeCounter struct {
	records.Records
	writes atomic.Int64
}

func (w *writeCounter) Put(ctx context.Context, k string, v []byte) error {
	w.writes.Add(1)
	return w.Records.Put(ctx, k, v)
}

func (w *writeCounter) PutBatch(ctx context.Context, kvs []records.KV) error {
	w.writes.Add(1)
	return w.Records.PutBatch(ctx, kvs)
}

func (w *writeCounter) PutIfAbsent(ctx context.Context, k string, v []byte) (bool, error) {
	w.writes.Add(1)
	return w.Records.PutIfAbsent(ctx, k, v)
}

func (w *writeCounter) CompareAndSwap(ctx context.Context, k string, old, v []byte) (bool, error) {
	w.writes.Add(1)
	return w.Records.CompareAndSwap(ctx, k, old, v)
}

func (w *writeCounter) Delete(ctx context.Context, k string) error {
	w.writes.Add(1)
	return w.Records.Delete(ctx, k)
}

// TestNewKeysPerUserBound: the records keep at most NewKeysPerSecond new
// Idempotency-Keys of one user in one second; the next new key is refused
// 429-class (ErrTooManyKeys, an ErrThrottled) with nothing written, also
// when many arrive at once; a retry of a kept key is never refused, other
// users and the next second are not touched.
func TestNewKeysPerUserBound(t *testing.T) {
	rec := &writeCounter{Records: records.NewMemory()}
	t.Cleanup(func() { _ = rec.Records.Close() })
	const perSecond = 3
	idem := engine.NewIdempotency(rec, engine.IdempotencyOptions{NewKeysPerSecond: perSecond, Now: newTestClock().Now})
	ctx := context.Background()
	d := sha256.Sum256([]byte("body"))
	var runs atomic.Int64
	call := func(user, key string) error {
		_, _, err := idem.Do(ctx, user, key, d, func() (int, []byte) { runs.Add(1); return 200, []byte("{}") })
		return err
	}
	for i := range perSecond {
		if err := call("u1", fmt.Sprint("k", i)); err != nil {
			t.Fatalf("new key %d of %d: %v", i+1, perSecond, err)
		}
	}
	w := rec.writes.Load()
	// Many new keys at once past the bound: each refused, none written.
	var wg sync.WaitGroup
	var refused atomic.Int64
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := call("u1", fmt.Sprint("over", i)); errors.Is(err, engine.ErrTooManyKeys) && errors.Is(err, engine.ErrThrottled) {
				refused.Add(1)
			} else {
				t.Errorf("new key past the bound: %v; want ErrTooManyKeys", err)
			}
		}()
	}
	wg.Wait()
	if refused.Load() != 64 || rec.writes.Load() != w || runs.Load() != perSecond {
		t.Fatalf("past the bound: %d of 64 refused, %d writes, fn ran %d times; want 64, 0, %d",
			refused.Load(), rec.writes.Load()-w, runs.Load(), perSecond)
	}
	if err := call("u1", "k0"); err != nil || runs.Load() != perSecond {
		t.Fatalf("a retry of a kept key past the bound: %v (fn ran %d times); want its answer replayed", err, runs.Load())
	}
	if err := call("u2", "k0"); err != nil {
		t.Fatalf("another user: %v", err)
	}
}

// TestNewKeysBoundNextSecond: the bound is per second of the clock.
func TestNewKeysBoundNextSecond(t *testing.T) {
	clock := newTestClock()
	idem := engine.NewIdempotency(records.NewMemory(), engine.IdempotencyOptions{NewKeysPerSecond: 1, Now: clock.Now})
	d := sha256.Sum256([]byte("body"))
	call := func(key string) error {
		_, _, err := idem.Do(context.Background(), "u1", key, d, func() (int, []byte) { return 200, []byte("{}") })
		return err
	}
	if err := call("a"); err != nil {
		t.Fatal(err)
	}
	if err := call("b"); !errors.Is(err, engine.ErrTooManyKeys) {
		t.Fatalf("second new key in one second: %v; want ErrTooManyKeys", err)
	}
	clock.Advance(time.Second)
	if err := call("b"); err != nil {
		t.Fatalf("a new key in the next second: %v", err)
	}
}

// TestKeyedTeamRefusalsWriteNothing: the risk hook (and its rate limits)
// runs before the idempotency records, so a refused keyed team open or
// join writes nothing, as an unkeyed one: keyed and unkeyed refusals cost
// the same.
func TestKeyedTeamRefusalsWriteNothing(t *testing.T) {
	rec := &writeCounter{Records: records.NewMemory()}
	t.Cleanup(func() { _ = rec.Records.Close() })
	var verdict atomic.Value
	verdict.Store(engine.Verdict{Allow: true})
	env := openEnv(t, testBackends()[0], func(o *engine.Options) {
		o.Records = rec
		o.Risk = riskFunc(func(engine.RiskInput) engine.Verdict { return verdict.Load().(engine.Verdict) })
	})
	env.deal("d1", 2, 10, 0)
	team, err := env.e.OpenTeam(env.ctx, engine.Attempt{UserID: "lead"}, "d1", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []engine.Verdict{{Reason: "blocklist"}, {Reason: engine.RiskReasonRateUser}} {
		verdict.Store(v)
		w := rec.writes.Load()
		for i := range 20 {
			a := engine.Attempt{UserID: "u1", Once: engine.Once{Key: fmt.Sprint(v.Reason, i), Digest: sha256.Sum256([]byte{byte(i)})}}
			if _, err := env.e.OpenTeam(env.ctx, a, "d1", ""); err == nil {
				t.Fatalf("keyed open refused by %q: no error", v.Reason)
			}
			if _, err := env.e.JoinTeam(env.ctx, a, "d1", team.TeamID); err == nil {
				t.Fatalf("keyed join refused by %q: no error", v.Reason)
			}
			if _, err := env.e.OpenTeam(env.ctx, engine.Attempt{UserID: "u1"}, "d1", ""); err == nil {
				t.Fatalf("unkeyed open refused by %q: no error", v.Reason)
			}
		}
		if got := rec.writes.Load() - w; got != 0 {
			t.Fatalf("60 team calls refused by %q wrote %d records; want 0", v.Reason, got)
		}
	}
	verdict.Store(engine.Verdict{Allow: true})
	a := engine.Attempt{UserID: "u1", Once: engine.Once{Key: "blocklist0", Digest: sha256.Sum256([]byte{0})}}
	if _, err := env.e.JoinTeam(env.ctx, a, "d1", team.TeamID); err != nil {
		t.Fatalf("the refused key sent again once allowed: %v; want it decided afresh", err)
	}
}
