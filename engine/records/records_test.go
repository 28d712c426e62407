package records_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/engine/records/recordstest"
	"github.com/surge-retail/surge/internal/redistest"
)

func mustGet(t *testing.T, rec records.Records, key string) ([]byte, bool) {
	t.Helper()
	v, ok, err := rec.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v, ok
}

func wantRecord(t *testing.T, rec records.Records, key string, want []byte) {
	t.Helper()
	v, ok := mustGet(t, rec, key)
	if want == nil {
		if ok {
			t.Fatalf("Get(%q) = %q, true; want absent", key, v)
		}
		return
	}
	if !ok || !bytes.Equal(v, want) {
		t.Fatalf("Get(%q) = %q, %v; want %q, true", key, v, ok, want)
	}
}

func scanKeys(t *testing.T, rec records.Records, prefix string) []string {
	t.Helper()
	var keys []string
	err := rec.Scan(context.Background(), prefix, func(k string, v []byte) error {
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%q): %v", prefix, err)
	}
	return keys
}

func TestRecordsBasic(t *testing.T) {
	recordstest.ForEach(t, recordstest.Backends(true), func(t *testing.T, rec records.Records, _ func() records.Records) {
		ctx := context.Background()
		wantRecord(t, rec, "a", nil)
		if err := rec.Put(ctx, "a", []byte("1")); err != nil {
			t.Fatal(err)
		}
		wantRecord(t, rec, "a", []byte("1"))
		if err := rec.Put(ctx, "a", []byte("2")); err != nil {
			t.Fatal(err)
		}
		wantRecord(t, rec, "a", []byte("2"))

		// The empty value is present, not absent; binary values survive.
		if err := rec.Put(ctx, "empty", nil); err != nil {
			t.Fatal(err)
		}
		wantRecord(t, rec, "empty", []byte{})
		bin := []byte{0, 1, 0xff, '\n', 0}
		if err := rec.Put(ctx, "bin", bin); err != nil {
			t.Fatal(err)
		}
		wantRecord(t, rec, "bin", bin)

		// A returned value belongs to the caller.
		v, _ := mustGet(t, rec, "a")
		v[0] = 'x'
		wantRecord(t, rec, "a", []byte("2"))

		if err := rec.Delete(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		wantRecord(t, rec, "a", nil)
		if err := rec.Delete(ctx, "never"); err != nil {
			t.Fatalf("Delete(absent) = %v; want nil", err)
		}

		// Batches: all written, the last of a repeated key wins.
		err := rec.PutBatch(ctx, []records.KV{{"b/1", []byte("x")}, {"b/2", []byte("y")}, {"b/1", []byte("z")}})
		if err != nil {
			t.Fatal(err)
		}
		wantRecord(t, rec, "b/1", []byte("z"))
		wantRecord(t, rec, "b/2", []byte("y"))
		if err := rec.PutBatch(ctx, nil); err != nil {
			t.Fatalf("PutBatch(nil) = %v", err)
		}
	})
}

func TestRecordsBadKey(t *testing.T) {
	recordstest.ForEach(t, recordstest.Backends(true), func(t *testing.T, rec records.Records, _ func() records.Records) {
		ctx := context.Background()
		long := string(bytes.Repeat([]byte("k"), records.KeyLenMax+1))
		for _, key := range []string{"", long} {
			if err := rec.Put(ctx, key, []byte("v")); !errors.Is(err, records.ErrInvalid) {
				t.Errorf("Put(len %d) = %v; want records.ErrInvalid", len(key), err)
			}
			if _, _, err := rec.Get(ctx, key); !errors.Is(err, records.ErrInvalid) {
				t.Errorf("Get(len %d) = %v; want records.ErrInvalid", len(key), err)
			}
			if _, err := rec.PutIfAbsent(ctx, key, nil); !errors.Is(err, records.ErrInvalid) {
				t.Errorf("PutIfAbsent(len %d) = %v; want records.ErrInvalid", len(key), err)
			}
		}
		// A batch with one bad key writes nothing.
		err := rec.PutBatch(ctx, []records.KV{{"good", []byte("v")}, {"", []byte("v")}})
		if !errors.Is(err, records.ErrInvalid) {
			t.Fatalf("PutBatch(bad) = %v; want records.ErrInvalid", err)
		}
		wantRecord(t, rec, "good", nil)
		if keys := scanKeys(t, rec, ""); len(keys) != 0 {
			t.Fatalf("after bad writes Scan = %q; want nothing", keys)
		}
	})
}

func TestRecordsConditional(t *testing.T) {
	recordstest.ForEach(t, recordstest.Backends(true), func(t *testing.T, rec records.Records, _ func() records.Records) {
		ctx := context.Background()
		f := func(ok bool, err error, want bool, what string) {
			t.Helper()
			if err != nil || ok != want {
				t.Fatalf("%s = %v, %v; want %v, nil", what, ok, err, want)
			}
		}
		ok, err := rec.PutIfAbsent(ctx, "k", []byte("v1"))
		f(ok, err, true, "PutIfAbsent(new)")
		ok, err = rec.PutIfAbsent(ctx, "k", []byte("v2"))
		f(ok, err, false, "PutIfAbsent(existing)")
		wantRecord(t, rec, "k", []byte("v1"))

		ok, err = rec.CompareAndSwap(ctx, "k", []byte("nope"), []byte("v3"))
		f(ok, err, false, "CAS(wrong old)")
		ok, err = rec.CompareAndSwap(ctx, "k", nil, []byte("v3"))
		f(ok, err, false, "CAS(absent, present key)")
		ok, err = rec.CompareAndSwap(ctx, "k", []byte{}, []byte("v3"))
		f(ok, err, false, "CAS(empty, non-empty key)")
		wantRecord(t, rec, "k", []byte("v1"))
		ok, err = rec.CompareAndSwap(ctx, "k", []byte("v1"), []byte("v3"))
		f(ok, err, true, "CAS(right old)")
		wantRecord(t, rec, "k", []byte("v3"))

		ok, err = rec.CompareAndSwap(ctx, "new", []byte("x"), []byte("y"))
		f(ok, err, false, "CAS(old, absent key)")
		wantRecord(t, rec, "new", nil)
		ok, err = rec.CompareAndSwap(ctx, "new", nil, []byte{})
		f(ok, err, true, "CAS(absent, absent key)")
		ok, err = rec.CompareAndSwap(ctx, "new", []byte{}, []byte("z"))
		f(ok, err, true, "CAS(empty, empty key)")
		wantRecord(t, rec, "new", []byte("z"))

		// CAS and PutIfAbsent keep Scan's index up to date.
		if got := fmt.Sprint(scanKeys(t, rec, "")); got != "[k new]" {
			t.Fatalf("Scan = %s; want [k new]", got)
		}
	})
}

func TestRecordsScanOrder(t *testing.T) {
	recordstest.ForEach(t, recordstest.Backends(true), func(t *testing.T, rec records.Records, _ func() records.Records) {
		ctx := context.Background()
		keys := []string{"b", "a/2", "a/10", "a", "a/1", "a\xff", "a/\xff\xff", "a0", "c/x"}
		for _, k := range keys {
			if err := rec.Put(ctx, k, []byte("v"+k)); err != nil {
				t.Fatal(err)
			}
		}
		f := func(prefix, want string) {
			t.Helper()
			if got := fmt.Sprintf("%q", scanKeys(t, rec, prefix)); got != want {
				t.Errorf("Scan(%q) = %s; want %s", prefix, got, want)
			}
		}
		f("a/", `["a/1" "a/10" "a/2" "a/\xff\xff"]`)
		f("a", `["a" "a/1" "a/10" "a/2" "a/\xff\xff" "a0" "a\xff"]`)
		f("", `["a" "a/1" "a/10" "a/2" "a/\xff\xff" "a0" "a\xff" "b" "c/x"]`)
		f("zz", `[]`)
		f("a/\xff", `["a/\xff\xff"]`)

		// ScanFrom starts at a key (inclusive), never before the prefix,
		// and over records of another package too.
		from := func(rec records.Records, prefix, start, want string) {
			t.Helper()
			var got []string
			err := records.ScanFrom(ctx, rec, prefix, start, func(k string, _ []byte) error { got = append(got, k); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if g := fmt.Sprintf("%q", got); g != want {
				t.Errorf("ScanFrom(%q, %q) = %s; want %s", prefix, start, g, want)
			}
		}
		for _, r := range []records.Records{rec, struct{ records.Records }{rec}} {
			from(r, "a/", "a/10", `["a/10" "a/2" "a/\xff\xff"]`)
			from(r, "a/", "a/100", `["a/2" "a/\xff\xff"]`)
			from(r, "a/", "", `["a/1" "a/10" "a/2" "a/\xff\xff"]`)
			from(r, "a/", "b", `[]`)
			from(r, "", "a0", `["a0" "a\xff" "b" "c/x"]`)
		}

		// Values come with their keys.
		err := rec.Scan(ctx, "c/", func(k string, v []byte) error {
			if string(v) != "v"+k {
				t.Errorf("Scan value of %q = %q", k, v)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		// An error from fn stops the scan and comes back as is.
		stop := errors.New("stop")
		n := 0
		err = rec.Scan(ctx, "", func(string, []byte) error { n++; return stop })
		if err != stop || n != 1 {
			t.Fatalf("Scan with failing fn = %v after %d calls; want stop after 1", err, n)
		}
	})
}

func TestRecordsScanPagesAndWrites(t *testing.T) {
	recordstest.ForEach(t, recordstest.Backends(true), func(t *testing.T, rec records.Records, _ func() records.Records) {
		ctx := context.Background()
		const n = 700 // more than one page of every backend
		kvs := make([]records.KV, 0, n)
		for i := 0; i < n; i++ {
			kvs = append(kvs, records.KV{Key: fmt.Sprintf("p/%05d", i), Val: []byte(strconv.Itoa(i))})
		}
		if err := rec.PutBatch(ctx, kvs); err != nil {
			t.Fatal(err)
		}
		if err := rec.Put(ctx, "q", []byte("after")); err != nil {
			t.Fatal(err)
		}
		// fn deletes what it sees: the scan neither deadlocks nor skips.
		i := 0
		err := rec.Scan(ctx, "p/", func(k string, v []byte) error {
			if want := fmt.Sprintf("p/%05d", i); k != want || string(v) != strconv.Itoa(i) {
				return fmt.Errorf("item %d = %q=%q; want %q", i, k, v, want)
			}
			i++
			return rec.Delete(ctx, k)
		})
		if err != nil {
			t.Fatal(err)
		}
		if i != n {
			t.Fatalf("Scan saw %d keys; want %d", i, n)
		}
		if keys := scanKeys(t, rec, ""); fmt.Sprint(keys) != "[q]" {
			t.Fatalf("after deleting, Scan = %v; want [q]", keys)
		}
	})
}

// TestRecordsRaces checks that PutIfAbsent and CompareAndSwap decide once:
// exact winner counts under many goroutines.
func TestRecordsRaces(t *testing.T) {
	recordstest.ForEach(t, recordstest.Backends(true), func(t *testing.T, rec records.Records, _ func() records.Records) {
		ctx := context.Background()
		const goroutines, keys, incs = 16, 20, 25
		var wins [keys]atomic.Int64
		var wg sync.WaitGroup
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; k < keys; k++ {
					ok, err := rec.PutIfAbsent(ctx, fmt.Sprintf("once/%d", k), []byte(strconv.Itoa(g)))
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						wins[k].Add(1)
					}
				}
				// A counter incremented by CAS loops.
				for i := 0; i < incs; i++ {
					for {
						cur, ok, err := rec.Get(ctx, "counter")
						if err != nil {
							t.Error(err)
							return
						}
						var old []byte
						n := 0
						if ok {
							old = cur
							n, _ = strconv.Atoi(string(cur))
						}
						swapped, err := rec.CompareAndSwap(ctx, "counter", old, []byte(strconv.Itoa(n+1)))
						if err != nil {
							t.Error(err)
							return
						}
						if swapped {
							break
						}
					}
				}
			}()
		}
		wg.Wait()
		for k := range wins {
			if w := wins[k].Load(); w != 1 {
				t.Errorf("PutIfAbsent(once/%d): %d winners; want 1", k, w)
			}
		}
		wantRecord(t, rec, "counter", []byte(strconv.Itoa(goroutines*incs)))
	})
}

// TestRecordsCountedBatch checks the exact counter used by the order store
// under overlapping concurrent batches.
func TestRecordsCountedBatch(t *testing.T) {
	recordstest.ForEach(t, recordstest.Backends(true), func(t *testing.T, rec records.Records, _ func() records.Records) {
		ctx := context.Background()
		cb := rec.(records.CountedBatcher)
		const goroutines, ids, per = 8, 300, 10
		var added atomic.Int64
		var wg sync.WaitGroup
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Every goroutine writes every id, in batches of per,
				// starting at a different place.
				for b := 0; b < ids/per; b++ {
					var kvs []records.KV
					var counted []string
					for i := 0; i < per; i++ {
						id := (g*37 + b*per + i) % ids
						k := fmt.Sprintf("cnt/%03d", id)
						kvs = append(kvs, records.KV{Key: k, Val: []byte{byte(g)}})
						counted = append(counted, k, k) // duplicates count once
					}
					n, err := cb.PutBatchCounted(ctx, kvs, counted, "cnt#")
					if err != nil {
						t.Error(err)
						return
					}
					added.Add(n)
				}
			}()
		}
		wg.Wait()
		if got := added.Load(); got != ids {
			t.Errorf("sum of added = %d; want %d", got, ids)
		}
		wantRecord(t, rec, "cnt#", []byte(strconv.Itoa(ids)))
		if keys := scanKeys(t, rec, "cnt/"); len(keys) != ids {
			t.Errorf("Scan(cnt/) = %d keys; want %d", len(keys), ids)
		}
	})
}

func TestRecordsDurableAndClosed(t *testing.T) {
	recordstest.ForEach(t, recordstest.Backends(true), func(t *testing.T, rec records.Records, reopen func() records.Records) {
		ctx := context.Background()
		if err := rec.PutBatch(ctx, []records.KV{{"d/1", []byte("one")}, {"d/2", []byte("two")}}); err != nil {
			t.Fatal(err)
		}
		if reopen != nil {
			rec = reopen()
			wantRecord(t, rec, "d/1", []byte("one"))
			if got := fmt.Sprint(scanKeys(t, rec, "d/")); got != "[d/1 d/2]" {
				t.Fatalf("after reopen Scan = %s", got)
			}
		}
		if err := rec.Close(); err != nil {
			t.Fatal(err)
		}
		if err := rec.Close(); err != nil {
			t.Fatalf("second Close = %v; want nil", err)
		}
		if _, _, err := rec.Get(ctx, "d/1"); !errors.Is(err, records.ErrClosed) {
			t.Errorf("Get after Close = %v; want records.ErrClosed", err)
		}
		if err := rec.Put(ctx, "d/3", nil); !errors.Is(err, records.ErrClosed) {
			t.Errorf("Put after Close = %v; want records.ErrClosed", err)
		}
		if err := rec.Scan(ctx, "", func(string, []byte) error { return nil }); !errors.Is(err, records.ErrClosed) {
			t.Errorf("Scan after Close = %v; want records.ErrClosed", err)
		}
	})
}

// TestRedisRecordsShared checks that two nodes on one Redis decide once.
func TestRedisRecordsShared(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	var nodes [2]records.Records
	for i := range nodes {
		r, err := records.OpenRedis(ctx, records.Options{RedisAddrs: []string{srv.Addr}})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		nodes[i] = r
	}
	const keys, perNode = 50, 4
	var wins atomic.Int64
	var wg sync.WaitGroup
	for i := range nodes {
		for g := 0; g < perNode; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; k < keys; k++ {
					ok, err := nodes[i].PutIfAbsent(ctx, fmt.Sprintf("s/%d", k), []byte{byte(i)})
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						wins.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	if w := wins.Load(); w != keys {
		t.Fatalf("winners = %d; want %d", w, keys)
	}
	if n := len(scanKeys(t, nodes[1], "s/")); n != keys {
		t.Fatalf("node 1 sees %d keys; want %d", n, keys)
	}
}

func TestOpenRedisRecordsUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2e9)
	defer cancel()
	_, err := records.OpenRedis(ctx, records.Options{RedisAddrs: []string{"127.0.0.1:1"}})
	if !errors.Is(err, records.ErrUnavailable) {
		t.Fatalf("records.OpenRedis(closed port) = %v; want records.ErrUnavailable", err)
	}
}

func TestRecordsDeleteIfEqual(t *testing.T) {
	recordstest.ForEach(t, recordstest.Backends(true), func(t *testing.T, rec records.Records, _ func() records.Records) {
		ctx := context.Background()
		if err := rec.Put(ctx, "x/1", []byte("v1")); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			key, old string
			want     bool
		}{{"x/1", "other", false}, {"x/none", "v1", false}, {"x/1", "v1", true}, {"x/1", "v1", false}} {
			ok, err := records.DeleteIfEqual(ctx, rec, tc.key, []byte(tc.old))
			if err != nil || ok != tc.want {
				t.Fatalf("records.DeleteIfEqual(%q, %q) = %v, %v; want %v", tc.key, tc.old, ok, err, tc.want)
			}
		}
		if keys := scanKeys(t, rec, "x/"); len(keys) != 0 {
			t.Fatalf("Scan after delete = %q", keys)
		}
	})
}

// TestRedisRecordsServerDown: with the server gone, calls fail (marked
// records.ErrUnavailable unless the caller's deadline came first) instead of
// hanging.
func TestRedisRecordsServerDown(t *testing.T) {
	srv := redistest.Start(t)
	rec, err := records.OpenRedis(context.Background(), records.Options{RedisAddrs: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	if err := rec.Put(context.Background(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := rec.PutIfAbsent(ctx, "k2", []byte("v")); !errors.Is(err, records.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PutIfAbsent with the server down = %v; want records.ErrUnavailable", err)
	}
}

// TestRecordsTagged, on every backend (a 3-master cluster included):
// tagged records are point records of their tag's slot: read, written
// once, deleted; not listed by a Scan of their keys; bad tags refused.
func TestRecordsTagged(t *testing.T) {
	recordstest.ForEach(t, recordstest.Backends(true), func(t *testing.T, rec records.Records, reopen func() records.Records) {
		ctx := context.Background()
		tg := records.TaggedOf(rec)
		if _, ok, err := tg.GetTagged(ctx, "s1", "pay/r1"); err != nil || ok {
			t.Fatalf("GetTagged(absent) = %v, %v", ok, err)
		}
		for i, store := range []string{"s1", "s2", "s3", "store.4"} {
			won, err := tg.PutIfAbsentTagged(ctx, store, "pay/r1", []byte("p"+strconv.Itoa(i)))
			if err != nil || !won {
				t.Fatalf("PutIfAbsentTagged(%s) = %v, %v", store, won, err)
			}
		}
		if won, err := tg.PutIfAbsentTagged(ctx, "s1", "pay/r1", []byte("other")); err != nil || won {
			t.Fatalf("PutIfAbsentTagged over an existing record = %v, %v; want false", won, err)
		}
		if v, ok, err := tg.GetTagged(ctx, "s2", "pay/r1"); err != nil || !ok || string(v) != "p1" {
			t.Fatalf("GetTagged(s2) = %q, %v, %v; want p1", v, ok, err)
		}
		if keys := scanKeys(t, rec, "pay/"); len(keys) != 0 {
			t.Fatalf("Scan of their keys lists tagged records: %q", keys)
		}
		if err := tg.DeleteTagged(ctx, "s2", "pay/r1"); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := tg.GetTagged(ctx, "s2", "pay/r1"); err != nil || ok {
			t.Fatalf("GetTagged after delete = %v, %v", ok, err)
		}
		for _, bad := range []string{"", "a{b", "a}b", "a/b"} {
			if _, err := tg.PutIfAbsentTagged(ctx, bad, "k", []byte("v")); !errors.Is(err, records.ErrInvalid) {
				t.Fatalf("tag %q: %v; want ErrInvalid", bad, err)
			}
		}
		if reopen != nil {
			tg = records.TaggedOf(reopen())
			if v, ok, err := tg.GetTagged(ctx, "s1", "pay/r1"); err != nil || !ok || string(v) != "p0" {
				t.Fatalf("GetTagged after reopening = %q, %v, %v; want p0 (durable)", v, ok, err)
			}
		}
	})
}
