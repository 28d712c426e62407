package engine_test

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/engine/records"
)

// TestIdempotent: the same key and body give the first answer; another
// body, a conflict (law 5), also under concurrency.
func TestIdempotent(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	rec := records.NewMemory()
	t.Cleanup(func() { _ = rec.Close() })
	idem := engine.NewIdempotency(rec, engine.IdempotencyOptions{})
	d1 := sha256.Sum256([]byte(`{"quantity":1}`))
	d2 := sha256.Sum256([]byte(`{"quantity":2}`))
	var runs atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body, err := idem.Do(env.ctx, "u1", "k-1", d1, func() (int, []byte) {
				return 200, []byte(fmt.Sprintf(`{"run":%d}`, runs.Add(1)))
			})
			// A duplicate racing the first call may be refused while the
			// first runs; it never runs fn again nor gets another answer.
			if err == nil && (status != 200 || string(body) != `{"run":1}`) {
				t.Errorf("Idempotent = %d %s %v", status, body, err)
			}
		}()
	}
	wg.Wait()
	if runs.Load() != 1 {
		t.Fatalf("fn ran %d times", runs.Load())
	}
	status, body, err := idem.Do(env.ctx, "u1", "k-1", d1, func() (int, []byte) { return 500, nil })
	if err != nil || status != 200 || string(body) != `{"run":1}` {
		t.Fatalf("repeat = %d %s %v; want the first answer", status, body, err)
	}
	_, _, err = idem.Do(env.ctx, "u1", "k-1", d2, func() (int, []byte) { return 200, nil })
	wantErr(t, "other body", err, engine.ErrIdempotencyConflict)
	status, _, err = idem.Do(env.ctx, "u2", "k-1", d2, func() (int, []byte) { return 201, nil })
	if err != nil || status != 201 {
		t.Fatalf("other user: %d %v", status, err)
	}
}
