package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/inventory"
)

// TestRecordsShrinkAfterCrowd checks that the memory a crowd's records
// took goes back when they are gone: a crowd of holds of which 1 in 100 is
// paid and 1 in 100 still held, the rest released and purged, leaves
// about as many record slots as reservations left, not the crowd's (shards
// rebuilt, recShard.rebuild), while other goroutines read, confirm and
// release the survivors; the survivors keep their states and the pool its
// exact totals, and the holds left still expire after the move.
func TestRecordsShrinkAfterCrowd(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s := inventory.NewMemory(inventory.Options{Now: clk.Now})
	defer s.Close()
	shards, rebuildSlots := inventory.Shards(s)
	n := shards * rebuildSlots * 3
	if err := s.CreatePool(ctx, "k:p", int64(n)); err != nil {
		t.Fatal(err)
	}
	id := func(i int) string { return fmt.Sprintf("k:r%07d", i) }
	const (
		kindPaid = 0  // i%100: confirmed
		kindLong = 1  // held for 10 minutes; half released while the crowd goes
		kindRest = 99 // (any other): released by Expire, then purged
	)
	var wg sync.WaitGroup
	const workers = 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				ttl := time.Minute
				if i%100 == kindLong {
					ttl = 10 * time.Minute
				}
				_, err := s.Reserve(ctx, inventory.ReserveRequest{ID: id(i), User: fmt.Sprintf("u%d", i), TTL: ttl,
					Lines: []inventory.Line{{Pool: "k:p", Quantity: 1, Limit: 1}}})
				if err == nil && i%100 == kindPaid {
					_, err = s.Confirm(ctx, id(i))
				}
				if err != nil {
					t.Errorf("reserve %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	peakSlots, peakIndex := inventory.MemSlots(s)
	clk.Advance(2 * time.Minute)
	var stop atomic.Bool
	var released atomic.Int64
	errs := make(chan error, workers)
	// Readers and writers of the survivors while the crowd is expired and
	// purged (and the shards rebuilt under them).
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; !stop.Load(); round++ {
				for i := w*100 + round%100*0; i < n; i += 400 {
					if r, err := s.Reservation(ctx, id(i)); err != nil || r.State != inventory.StatePaid {
						errs <- fmt.Errorf("Reservation(%s) = %+v, %v; want paid", id(i), r, err)
						return
					}
					if r, err := s.Confirm(ctx, id(i)); err != nil || r.State != inventory.StatePaid {
						errs <- fmt.Errorf("Confirm(%s) = %+v, %v; want paid", id(i), r, err)
						return
					}
					j := i + kindLong
					if j%200 == kindLong && round == 0 {
						if _, err := s.Release(ctx, id(j)); err != nil {
							errs <- fmt.Errorf("Release(%s) = %v", id(j), err)
							return
						}
						released.Add(1)
					} else if r, err := s.Reservation(ctx, id(j)); err != nil || r.State == inventory.StatePaid {
						errs <- fmt.Errorf("Reservation(%s) = %+v, %v; want held or released", id(j), r, err)
						return
					}
				}
				if _, _, err := s.Scan(ctx, inventory.StatePaid, "", 50); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	expired, purged := 0, 0
	for {
		rs, err := s.Expire(ctx, clk.Now(), inventory.ExpireMax)
		if err != nil {
			t.Fatal(err)
		}
		k, err := s.Purge(ctx, clk.Now(), inventory.ExpireMax)
		if err != nil {
			t.Fatal(err)
		}
		expired += len(rs)
		purged += k
		if len(rs) == 0 && k == 0 {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	paid, long := (n+99)/100, (n+98)/100 // i%100 == 0, == 1
	if want := n - paid - long; expired != want {
		t.Fatalf("expired %d; want %d", expired, want)
	}
	rel := int(released.Load())
	if want := n - paid - long; purged != want { // those released by hand are not due yet
		t.Fatalf("purged %d; want %d", purged, want)
	}
	if p, _ := s.Pool(ctx, "k:p"); p.Sold != int64(paid) || p.Held != int64(long-rel) || p.Available != int64(n-paid-long+rel) {
		t.Fatalf("pool = %+v; want %d sold, %d held", p, paid, long-rel)
	}
	// One more round rebuilds what the busy readers kept from it.
	if _, err := s.Expire(ctx, clk.Now(), 1); err != nil {
		t.Fatal(err)
	}
	live := paid + long
	slots, index := inventory.MemSlots(s)
	if recs, _ := inventory.MemRecords(s); recs != live {
		t.Fatalf("records in memory = %d; want %d", recs, live)
	}
	if slots > 2*live || index >= peakIndex {
		t.Fatalf("after the crowd: %d slots, index %d (peak %d slots, index %d) for %d records; want the slots near the records and the index smaller",
			slots, index, peakSlots, peakIndex, live)
	}
	// Survivors answer as they are; Scan finds every paid one.
	for i := range n {
		r, err := s.Reservation(ctx, id(i))
		switch {
		case i%100 == kindPaid:
			if err != nil || r.State != inventory.StatePaid {
				t.Fatalf("Reservation(%s) = %+v, %v; want paid", id(i), r, err)
			}
		case i%100 == kindLong:
			if err != nil || r.State != inventory.StateHeld && r.State != inventory.StateReleased {
				t.Fatalf("Reservation(%s) = %+v, %v; want held or released", id(i), r, err)
			}
		default:
			if !errors.Is(err, inventory.ErrReservationNotFound) {
				t.Fatalf("Reservation(%s) = %v; want purged", id(i), err)
			}
		}
	}
	if got := len(scanPages(t, s, inventory.StatePaid, inventory.ScanLimitMax)); got != paid {
		t.Fatalf("Scan(paid) = %d; want %d", got, paid)
	}
	// The holds left, moved by the rebuild, still expire.
	clk.Advance(10 * time.Minute)
	left := 0
	for {
		rs, err := s.Expire(ctx, clk.Now(), inventory.ExpireMax)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			break
		}
		left += len(rs)
	}
	if left != long-rel {
		t.Fatalf("expired %d holds after the rebuild; want %d", left, long-rel)
	}
	if p, _ := s.Pool(ctx, "k:p"); p.Held != 0 || p.Sold != int64(paid) {
		t.Fatalf("pool at the end = %+v", p)
	}
}

// scanPages scans every reservation in state st, limit a page.
func scanPages(t *testing.T, s inventory.Store, st inventory.State, limit int) []inventory.Reservation {
	t.Helper()
	var all []inventory.Reservation
	cursor := ""
	for {
		rs, next, err := s.Scan(context.Background(), st, cursor, limit)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, rs...)
		if next == "" {
			return all
		}
		cursor = next
	}
}
