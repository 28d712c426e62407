package engine

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine/records"
)

// answerClock is a settable clock.
type answerClock struct{ ns atomic.Int64 }

func newAnswerClock() *answerClock {
	c := &answerClock{}
	c.ns.Store(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *answerClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *answerClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func testDigest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// answerFn returns an fn answering (status, body) that counts its runs.
func answerFn(runs *atomic.Int64, status int, body string) func() (int, []byte) {
	return func() (int, []byte) {
		runs.Add(1)
		return status, []byte(body)
	}
}

func wantAnswer(t *testing.T, i *Idempotency, user, key, body string, fn func() (int, []byte), wantStatus int, wantBody string, wantErr error) {
	t.Helper()
	st, b, err := i.Do(context.Background(), user, key, testDigest(body), fn)
	if !errors.Is(err, wantErr) || err == nil && (st != wantStatus || string(b) != wantBody) {
		t.Fatalf("Do(%q, %q, %q) = %d, %q, %v; want %d, %q, %v", user, key, body, st, b, err, wantStatus, wantBody, wantErr)
	}
}

func TestIdempotencyKeys(t *testing.T) {
	i := NewIdempotency(records.NewMemory(), IdempotencyOptions{})
	var runs atomic.Int64
	fn := answerFn(&runs, 200, "ok")
	for _, key := range []string{"", strings.Repeat("k", 129), "a\x7f", "tab\t", "é", "nl\n"} {
		wantAnswer(t, i, "u1", key, "b", fn, 0, "", ErrInvalid)
	}
	wantAnswer(t, i, "", "k", "b", fn, 0, "", ErrInvalid)
	if runs.Load() != 0 {
		t.Fatalf("fn ran %d times for invalid keys", runs.Load())
	}
	wantAnswer(t, i, "u1", strings.Repeat("~", 128), "b", fn, 200, "ok", nil)
	wantAnswer(t, i, "u1", " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "b", fn, 200, "ok", nil)
	if runs.Load() != 2 {
		t.Fatalf("fn ran %d times; want 2", runs.Load())
	}
}

func TestIdempotencyReplay(t *testing.T) {
	forEachRecords(t, func(t *testing.T, rec records.Records, reopen func() records.Records) {
		clock := newAnswerClock()
		opts := IdempotencyOptions{TTL: time.Hour, Now: clock.Now}
		i := NewIdempotency(rec, opts)
		var runs atomic.Int64
		wantAnswer(t, i, "u1", "k1", "body", answerFn(&runs, 201, "first"), 201, "first", nil)
		wantAnswer(t, i, "u1", "k1", "body", answerFn(&runs, 201, "second"), 201, "first", nil)
		wantAnswer(t, i, "u1", "k1", "other", answerFn(&runs, 201, "third"), 0, "", ErrIdempotencyConflict)
		wantAnswer(t, i, "u2", "k1", "body", answerFn(&runs, 201, "u2"), 201, "u2", nil)
		wantAnswer(t, i, "u1", "k2", "body", answerFn(&runs, 409, "sold out"), 409, "sold out", nil)
		wantAnswer(t, i, "u1", "k2", "body", answerFn(&runs, 201, "again"), 409, "sold out", nil)
		if runs.Load() != 3 {
			t.Fatalf("fn ran %d times; want 3", runs.Load())
		}

		// 5xx is not remembered: the retry runs again.
		wantAnswer(t, i, "u1", "k3", "body", answerFn(&runs, 503, "busy"), 503, "busy", nil)
		wantAnswer(t, i, "u1", "k3", "other", answerFn(&runs, 201, "done"), 201, "done", nil)
		if runs.Load() != 5 {
			t.Fatalf("fn ran %d times; want 5", runs.Load())
		}
		// Neither is 429 (throttled): the retry must run, not replay it.
		wantAnswer(t, i, "u1", "k4", "body", answerFn(&runs, 429, "throttled"), 429, "throttled", nil)
		wantAnswer(t, i, "u1", "k4", "body", answerFn(&runs, 200, "reserved"), 200, "reserved", nil)
		wantAnswer(t, i, "u1", "k4", "body", answerFn(&runs, 200, "twice"), 200, "reserved", nil)
		if runs.Load() != 7 {
			t.Fatalf("fn ran %d times; want 7", runs.Load())
		}

		// A new process (and node) gets the stored answer.
		if reopen != nil {
			rec = reopen()
		}
		i = NewIdempotency(rec, opts)
		wantAnswer(t, i, "u1", "k1", "body", answerFn(&runs, 201, "after restart"), 201, "first", nil)
		wantAnswer(t, i, "u1", "k1", "other", answerFn(&runs, 201, "x"), 0, "", ErrIdempotencyConflict)
		if runs.Load() != 7 {
			t.Fatalf("fn ran %d times after restart; want 7", runs.Load())
		}

		// After TTL the key is free again.
		clock.Advance(time.Hour + time.Second)
		wantAnswer(t, i, "u1", "k1", "other", answerFn(&runs, 201, "new"), 201, "new", nil)

		// Sweep removes what expired (once past TTL plus a lease).
		clock.Advance(time.Hour + 2*claimLease)
		n, err := i.Sweep(context.Background())
		if err != nil || n != 5 {
			t.Fatalf("Sweep() = %d, %v; want 5 (k1, k1 of u2, k2, k3, k4)", n, err)
		}
		if keys := scanKeys(t, rec, answerKeyPrefix); len(keys) != 0 {
			t.Fatalf("after Sweep %d records are left", len(keys))
		}
	})
}

// TestIdempotencyConcurrent: identical concurrent calls, on one or on two
// "nodes" sharing records, run fn exactly once; calls with another body
// get a conflict.
func TestIdempotencyConcurrent(t *testing.T) {
	forEachRecords(t, func(t *testing.T, rec records.Records, _ func() records.Records) {
		nodes := []*Idempotency{NewIdempotency(rec, IdempotencyOptions{}), NewIdempotency(rec, IdempotencyOptions{})}
		const keys, goroutines = 10, 12
		var runs [keys]atomic.Int64
		var conflicts, answers atomic.Int64
		var wg sync.WaitGroup
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				node := nodes[g%2]
				for k := 0; k < keys; k++ {
					body := "A"
					if g%4 == 3 {
						body = "B" // a different request with the same key
					}
					st, b, err := node.Do(context.Background(), "u", fmt.Sprint("key", k), testDigest(body), func() (int, []byte) {
						runs[k].Add(1)
						time.Sleep(time.Millisecond) // widen the window
						return 200, []byte(body)
					})
					switch {
					case errors.Is(err, ErrIdempotencyConflict):
						conflicts.Add(1)
					case err != nil:
						t.Error(err)
					case st != 200 || string(b) != body:
						t.Errorf("Do(key%d, %s) = %d, %q", k, body, st, b)
					default:
						answers.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		for k := range runs {
			if n := runs[k].Load(); n != 1 {
				t.Errorf("key%d: fn ran %d times; want 1", k, n)
			}
		}
		if a, c := answers.Load(), conflicts.Load(); a+c != keys*goroutines || c == 0 {
			t.Errorf("answers %d + conflicts %d; want %d in all, some conflicts", a, c, keys*goroutines)
		}
	})
}

// TestIdempotencyDeadClaim: a claim left by a dead process holds the key
// for its lease, then is taken over.
func TestIdempotencyDeadClaim(t *testing.T) {
	rec := records.NewMemory()
	clock := newAnswerClock()
	i := NewIdempotency(rec, IdempotencyOptions{Now: clock.Now})
	rkey := answerKey("u", "k")
	if err := rec.Put(context.Background(), rkey, encodeClaim(testDigest("A"), clock.Now().Add(claimLease))); err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int64
	// Another request with the same key: conflict at once.
	wantAnswer(t, i, "u", "k", "B", answerFn(&runs, 200, "b"), 0, "", ErrIdempotencyConflict)
	// The same request waits for the claim, bounded by ctx.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := i.Do(ctx, "u", "k", testDigest("A"), answerFn(&runs, 200, "a")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do during a live claim = %v; want DeadlineExceeded", err)
	}
	clock.Advance(claimLease + time.Millisecond)
	wantAnswer(t, i, "u", "k", "A", answerFn(&runs, 200, "a"), 200, "a", nil)
	if runs.Load() != 1 {
		t.Fatalf("fn ran %d times; want 1", runs.Load())
	}
}

func TestIdempotencyPanic(t *testing.T) {
	i := NewIdempotency(records.NewMemory(), IdempotencyOptions{})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic in fn was swallowed")
			}
		}()
		_, _, _ = i.Do(context.Background(), "u", "k", testDigest("A"), func() (int, []byte) { panic("boom") })
	}()
	var runs atomic.Int64
	wantAnswer(t, i, "u", "k", "A", answerFn(&runs, 200, "ok"), 200, "ok", nil)
	if runs.Load() != 1 || len(i.flight.calls) != 0 {
		t.Fatalf("after a panic: runs %d, inflight %d; want 1, 0", runs.Load(), len(i.flight.calls))
	}
}

// TestIdempotencyBounded: the memory cache stays within EntriesMax while
// the records keep every answer.
func TestIdempotencyBounded(t *testing.T) {
	const entriesMax, keys = 64, 1000
	i := NewIdempotency(records.NewMemory(), IdempotencyOptions{EntriesMax: entriesMax, NewKeysPerSecond: -1})
	var runs atomic.Int64
	for k := 0; k < keys; k++ {
		wantAnswer(t, i, "u", fmt.Sprint(k), "A", answerFn(&runs, 200, fmt.Sprint(k)), 200, fmt.Sprint(k), nil)
	}
	if n := i.cache.Len(); n > entriesMax {
		t.Fatalf("cache holds %d entries; want <= %d", n, entriesMax)
	}
	for k := 0; k < keys; k++ {
		wantAnswer(t, i, "u", fmt.Sprint(k), "A", answerFn(&runs, 200, "again"), 200, fmt.Sprint(k), nil)
	}
	if runs.Load() != keys {
		t.Fatalf("fn ran %d times; want %d", runs.Load(), keys)
	}
}

func TestLRU(t *testing.T) {
	l := newLRU[int](lruShards) // one entry per shard
	for k := 0; k < 1000; k++ {
		l.Add(fmt.Sprint(k), k)
	}
	if n := l.Len(); n != lruShards {
		t.Fatalf("Len() = %d; want %d", n, lruShards)
	}
	l.Add("x", 1)
	if v, ok := l.Get("x"); !ok || v != 1 {
		t.Fatalf("Get(x) = %d, %v; want 1, true (most recent is kept)", v, ok)
	}
	if v := l.GetOrAdd("x", func() int { return 2 }); v != 1 {
		t.Fatalf("GetOrAdd(existing) = %d; want 1", v)
	}
	l.Remove("x")
	if _, ok := l.Get("x"); ok {
		t.Fatal("Get after Remove found the key")
	}
	if n := l.Len(); n > lruShards {
		t.Fatalf("Len() = %d; want at most %d", n, lruShards)
	}
}
