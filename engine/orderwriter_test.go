package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/engine/records"
)

// faultStore wraps a real orders.Store and injects faults: the first
// failFirst Upserts fail; gate (when not nil) holds every Upsert until it
// is closed or the call's context ends; when halfThenHang is set, Upserts
// after the first hangAfter write the first half of their batch to the
// real store and then hang until their context ends (a writer dying
// mid-batch).
type faultStore struct {
	orders.Store
	failFirst    int64
	gate         chan struct{}
	halfThenHang bool
	hangAfter    int64
	hanging      chan struct{} // closed when the first call hangs

	calls     atomic.Int64
	hangOnce  sync.Once
	errInject error
}

var errInjected = errors.New("injected store failure")

func (f *faultStore) Upsert(ctx context.Context, list []Order) error {
	n := f.calls.Add(1)
	if n <= f.failFirst {
		return errInjected
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.halfThenHang && n > f.hangAfter {
		if err := f.Store.Upsert(ctx, list[:len(list)/2]); err != nil {
			return err
		}
		f.hangOnce.Do(func() { close(f.hanging) })
		<-ctx.Done()
		return ctx.Err()
	}
	return f.Store.Upsert(ctx, list)
}

func openPebbleOrders(t *testing.T, dir string) records.Records {
	t.Helper()
	rec, err := records.OpenPebble(dir, records.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func closeWriter(t *testing.T, w *OrderWriter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	select {
	case <-w.dispatched:
	default:
		t.Fatal("dispatcher still running after Close")
	}
}

// submitAll submits list, waiting for room (Flush) when the queue is
// full, as the engine's backlog replay does.
func submitAll(t *testing.T, w *OrderWriter, list []Order) {
	t.Helper()
	for _, o := range list {
		for !w.Submit(o) {
			if err := w.Flush(context.Background()); err != nil {
				t.Error(err)
				return
			}
		}
	}
}

// TestOrderWriterExact: many goroutines submit, with duplicates; at the end
// the store holds exactly one order per id and counts exactly.
func TestOrderWriterExact(t *testing.T) {
	rec := openPebbleOrders(t, t.TempDir())
	defer rec.Close()
	store := orders.NewRecordsStore(rec)
	w, err := NewOrderWriter(store, OrderWriterOptions{BatchMax: 64, QueueMax: 1024})
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, per = 16, 250
	t0 := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var list []Order
			for i := 0; i < per; i++ {
				o := testOrder(fmt.Sprintf("r%d-%d", g, i), fmt.Sprintf("u%d", i%10), t0)
				list = append(list, o)
				if i%5 == 0 {
					list = append(list, o) // paid twice, replayed: harmless
				}
			}
			submitAll(t, w, list)
		}()
	}
	wg.Wait()
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	if st.Written != goroutines*per || st.Lag != 0 {
		t.Fatalf("Stats() = %+v; want Written %d, Lag 0", st, goroutines*per)
	}
	orderMustCount(t, store, goroutines*per)
	n := 0
	if err := rec.Scan(context.Background(), orders.RecordsKeyPrefix, func(string, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != goroutines*per {
		t.Fatalf("order records = %d; want %d", n, goroutines*per)
	}
	if !w.Written(OrderID("r3-7")) {
		t.Error("Written(o-r3-7) = false after Flush")
	}
	if w.Written("o-never") {
		t.Error("Written(o-never) = true")
	}
	closeWriter(t, w)
	if w.Submit(testOrder("late", "u", t0)) {
		t.Fatal("Submit after Close = true")
	}
}

// TestOrderWriterRetries: a store that fails several times then recovers;
// every order is written once, and the failures are counted.
func TestOrderWriterRetries(t *testing.T) {
	store := orders.NewRecordsStore(records.NewMemory())
	faulty := &faultStore{Store: store, failFirst: 5}
	w, err := NewOrderWriter(faulty, OrderWriterOptions{BatchMax: 50, RetryBackoff: time.Millisecond, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer closeWriter(t, w)
	const n = 1000
	var list []Order
	for i := 0; i < n; i++ {
		list = append(list, testOrder(fmt.Sprintf("r%d", i), "u", time.Now()))
	}
	submitAll(t, w, list)
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	orderMustCount(t, store, n)
	st := w.Stats()
	if st.Failures != 5 || st.Written != n || st.Lag != 0 {
		t.Fatalf("Stats() = %+v; want Failures 5, Written %d, Lag 0", st, n)
	}
}

// TestOrderWriterQueueBound: with the store stuck, Submit never blocks and
// accepts exactly QueueMax orders; they are all written once it recovers.
func TestOrderWriterQueueBound(t *testing.T) {
	store := orders.NewRecordsStore(records.NewMemory())
	faulty := &faultStore{Store: store, gate: make(chan struct{})}
	const queueMax = 300
	w, err := NewOrderWriter(faulty, OrderWriterOptions{BatchMax: 32, QueueMax: queueMax, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer closeWriter(t, w)
	accepted := 0
	for i := 0; i < 2*queueMax; i++ {
		if w.Submit(testOrder(fmt.Sprintf("r%d", i), "u", time.Now())) {
			accepted++
		}
	}
	if accepted != queueMax {
		t.Fatalf("accepted %d orders with the store stuck; want QueueMax = %d", accepted, queueMax)
	}
	if st := w.Stats(); st.Lag != queueMax || st.Written != 0 {
		t.Fatalf("Stats() = %+v; want Lag %d, Written 0", st, queueMax)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush(cancelled) with the store stuck = %v; want context.Canceled", err)
	}
	close(faulty.gate)
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	orderMustCount(t, store, queueMax)
}

// TestOrderWriterKilledMidBatch: the writer dies while a batch is half
// written; a new writer (after a restart of the records) replays every
// order; there is exactly one order per id and the count is exact.
func TestOrderWriterKilledMidBatch(t *testing.T) {
	dir := t.TempDir()
	rec := openPebbleOrders(t, dir)
	faulty := &faultStore{
		Store:        orders.NewRecordsStore(rec),
		halfThenHang: true,
		hangAfter:    3,
		hanging:      make(chan struct{}),
	}
	w, err := NewOrderWriter(faulty, OrderWriterOptions{BatchMax: 40, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	t0 := time.Now()
	var list []Order
	for i := 0; i < n; i++ {
		list = append(list, testOrder(fmt.Sprintf("r%04d", i), fmt.Sprintf("u%d", i%13), t0))
	}
	for _, o := range list {
		if !w.Submit(o) {
			t.Fatal("Submit refused below QueueMax")
		}
	}
	<-faulty.hanging
	// Kill: Close with an expired context abandons the writer.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Close(ctx); err == nil {
		t.Fatal("Close(expired) with batches hanging = nil; want an error")
	}
	select {
	case <-w.dispatched:
	default:
		t.Fatal("dispatcher still running after an abandoning Close")
	}
	if err := w.Flush(context.Background()); !errors.Is(err, ErrOrderWriterClosed) {
		t.Fatalf("Flush after abandon = %v; want ErrOrderWriterClosed", err)
	}
	partial, err := faulty.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if partial <= 0 || partial >= n {
		t.Fatalf("after the kill %d orders are written; want some but not all", partial)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: reopen the records and replay the whole backlog.
	rec = openPebbleOrders(t, dir)
	defer rec.Close()
	store := orders.NewRecordsStore(rec)
	orderMustCount(t, store, partial)
	w2, err := NewOrderWriter(store, OrderWriterOptions{BatchMax: 40})
	if err != nil {
		t.Fatal(err)
	}
	submitAll(t, w2, list)
	closeWriter(t, w2)
	orderMustCount(t, store, n)
	seen := map[string]int{}
	err = rec.Scan(context.Background(), orders.RecordsKeyPrefix, func(k string, _ []byte) error { seen[k]++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("distinct order records = %d; want %d", len(seen), n)
	}
	for _, o := range list {
		if seen[orders.RecordsKeyPrefix+o.OrderID] != 1 {
			t.Fatalf("order %s seen %d times", o.OrderID, seen[orders.RecordsKeyPrefix+o.OrderID])
		}
	}
	total := 0
	for u := 0; u < 13; u++ {
		list, err := store.ByUser(context.Background(), fmt.Sprintf("u%d", u), orders.ByUserMax)
		if err != nil {
			t.Fatal(err)
		}
		total += len(list)
	}
	if total != n {
		t.Fatalf("per-user index holds %d orders; want %d", total, n)
	}
}

func TestOrderWriterBadInput(t *testing.T) {
	store := orders.NewRecordsStore(records.NewMemory())
	for _, opts := range []OrderWriterOptions{{BatchMax: -1}, {QueueMax: -1}, {Workers: writerWorkersMax + 1}, {RetryBackoff: -1}} {
		if _, err := NewOrderWriter(store, opts); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewOrderWriter(%+v) = %v; want ErrInvalid", opts, err)
		}
	}
	if _, err := NewOrderWriter(nil, OrderWriterOptions{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewOrderWriter(nil) = %v; want ErrInvalid", err)
	}
	w, err := NewOrderWriter(store, OrderWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeWriter(t, w)
	if w.Submit(Order{OrderID: "", UserID: "u"}) || w.Submit(Order{OrderID: "o-1"}) {
		t.Fatal("Submit accepted an order without order id or user id")
	}
	if st := w.Stats(); st.Lag != 0 {
		t.Fatalf("Lag after refused submits = %d; want 0", st.Lag)
	}
}
