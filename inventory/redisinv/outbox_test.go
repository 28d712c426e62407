package redisinv_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/redisinv"
)

// outboxData returns the entries' data, sorted.
func outboxData(es []inventory.OutboxEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = string(e.Data)
	}
	sort.Strings(out)
	return out
}

// reserveIn reserves one unit of store's pool "STORE:l:k" as user.
func reserveIn(t *testing.T, s *redisinv.Store, store, id string) {
	t.Helper()
	_, err := s.Reserve(context.Background(), inventory.ReserveRequest{ID: store + ":" + id, User: "u-" + id, TTL: time.Hour,
		Lines: []inventory.Line{{Pool: store + ":l:k", Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOutbox: a confirmation hands its entry to the outbox exactly once
// (a second confirm appends nothing); a reader that dies with entries
// pending has them taken over by another; acknowledged entries are gone
// and the lag says so.
func TestOutbox(t *testing.T) {
	s := open(t, redistest.Start(t), "ob", inventory.Options{})
	testOutbox(t, s)
}

// TestOutboxCluster: the same on a 3-master cluster, with entries of many
// stores on many slots, read and acknowledged across the nodes.
func TestOutboxCluster(t *testing.T) {
	s := open(t, startCluster(t), "obc", inventory.Options{})
	testOutbox(t, s)
}

func testOutbox(t *testing.T, s *redisinv.Store) {
	ctx := context.Background()
	const stores = 12
	for i := range stores {
		if err := s.CreatePool(ctx, fmt.Sprintf("st%d:l:k", i), 10); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for i := range stores {
		store := fmt.Sprintf("st%d", i)
		reserveIn(t, s, store, "r1")
		entry := "order of " + store
		for range 2 { // the second confirm is a repeat: no second entry
			if _, err := s.ConfirmWith(ctx, store+":r1", []byte(entry)); err != nil {
				t.Fatal(err)
			}
		}
		want = append(want, entry)
	}
	sort.Strings(want)
	if _, err := s.ConfirmWith(ctx, "st0:r1", nil); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("ConfirmWith(no entry) = %v; want ErrInvalid", err)
	}
	lag, err := s.OutboxLag(ctx)
	if err != nil || lag.Entries != stores || lag.Oldest.IsZero() {
		t.Fatalf("OutboxLag = %+v, %v; want %d entries", lag, err, stores)
	}

	// Reader "dead" reads everything and never acknowledges.
	got, err := s.ReadOutbox(ctx, "dead", 100, time.Hour)
	if err != nil || fmt.Sprint(outboxData(got)) != fmt.Sprint(want) {
		t.Fatalf("ReadOutbox(dead) = %v, %v; want %v", outboxData(got), err, want)
	}
	// A live reader sees nothing new, and nothing to take over while the
	// dead one's entries are younger than its claim idle time.
	if got, err := s.ReadOutbox(ctx, "live", 100, time.Hour); err != nil || len(got) != 0 {
		t.Fatalf("ReadOutbox(live) = %v, %v; want nothing", outboxData(got), err)
	}
	// With a claim idle time of zero it takes over every pending entry,
	// max at a time.
	var taken []inventory.OutboxEntry
	for len(taken) < stores {
		got, err := s.ReadOutbox(ctx, "live", 5, 0)
		if err != nil || len(got) == 0 || len(got) > 5 {
			t.Fatalf("ReadOutbox(live, max 5, claim) = %d entries, %v", len(got), err)
		}
		if err := s.AckOutbox(ctx, got); err != nil {
			t.Fatal(err)
		}
		taken = append(taken, got...)
	}
	if fmt.Sprint(outboxData(taken)) != fmt.Sprint(want) {
		t.Fatalf("taken over = %v; want %v", outboxData(taken), want)
	}
	lag, err = s.OutboxLag(ctx)
	if err != nil || lag.Entries != 0 || !lag.Oldest.IsZero() {
		t.Fatalf("OutboxLag after the acks = %+v, %v; want none", lag, err)
	}
	if got, err := s.ReadOutbox(ctx, "dead", 100, 0); err != nil || len(got) != 0 {
		t.Fatalf("ReadOutbox after the acks = %v, %v; want nothing", outboxData(got), err)
	}
}

// TestOutboxConcurrentReaders: many confirmations racing several readers
// that read, acknowledge and sometimes die: every entry is delivered, and
// exactly the confirmed reservations have one.
func TestOutboxConcurrentReaders(t *testing.T) {
	s := open(t, redistest.Start(t), "obr", inventory.Options{})
	ctx := context.Background()
	const stores, per = 4, 100
	for i := range stores {
		if err := s.CreatePool(ctx, fmt.Sprintf("cs%d:l:k", i), per); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range per {
				store, id := fmt.Sprintf("cs%d", i), fmt.Sprintf("r%d", j)
				reserveIn(t, s, store, id)
				if _, err := s.ConfirmWith(ctx, store+":"+id, []byte(store+":"+id)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var mu sync.Mutex
	seen := map[string]int{}
	done := make(chan struct{})
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				es, err := s.ReadOutbox(ctx, fmt.Sprintf("reader%d-%d", r, n/7), 16, 0)
				if err != nil {
					t.Error(err)
					return
				}
				if n%7 == 6 {
					continue // this incarnation dies without acknowledging
				}
				if err := s.AckOutbox(ctx, es); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, e := range es {
					seen[string(e.Data)]++
				}
				mu.Unlock()
			}
		}()
	}
	// A bounded wait for the readers to drain everything, not a timing
	// assertion.
	for i := 0; ; i++ {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		lag, err := s.OutboxLag(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == stores*per && lag.Entries == 0 {
			break
		}
		if i == 3000 {
			t.Fatalf("after 30s: %d of %d entries seen, lag %+v", n, stores*per, lag)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(done)
	wg.Wait()
	for i := range stores {
		for j := range per {
			if k := fmt.Sprintf("cs%d:r%d", i, j); seen[k] == 0 {
				t.Errorf("entry %s never delivered", k)
			}
		}
	}
}

// TestOutboxReadNeverStrands: a read with max below what is waiting over
// many streams returns at most max and leaves the rest undelivered, so
// the next reads get them at once (not after another reader's claim idle
// time): nothing is delivered that is not returned.
func TestOutboxReadNeverStrands(t *testing.T) {
	s := open(t, redistest.Start(t), "obs", inventory.Options{})
	ctx := context.Background()
	const stores = 12
	for i := range stores {
		store := fmt.Sprintf("ns%d", i)
		if err := s.CreatePool(ctx, store+":l:k", 10); err != nil {
			t.Fatal(err)
		}
		for j := range 2 {
			id := fmt.Sprintf("r%d", j)
			reserveIn(t, s, store, id)
			if _, err := s.ConfirmWith(ctx, store+":"+id, []byte(store+":"+id)); err != nil {
				t.Fatal(err)
			}
		}
	}
	seen := map[string]bool{}
	for range 2 * stores * 2 / 5 {
		got, err := s.ReadOutbox(ctx, "only", 5, time.Hour)
		if err != nil || len(got) > 5 {
			t.Fatalf("ReadOutbox(max 5) = %d entries, %v", len(got), err)
		}
		for _, e := range got {
			seen[string(e.Data)] = true
		}
		if err := s.AckOutbox(ctx, got); err != nil {
			t.Fatal(err)
		}
	}
	for len(seen) < 2*stores {
		got, err := s.ReadOutbox(ctx, "only", 5, time.Hour)
		if err != nil || len(got) == 0 {
			t.Fatalf("after %d of %d entries, ReadOutbox = %d entries, %v; want the rest without waiting for a claim", len(seen), 2*stores, len(got), err)
		}
		for _, e := range got {
			seen[string(e.Data)] = true
		}
		if err := s.AckOutbox(ctx, got); err != nil {
			t.Fatal(err)
		}
	}
}
