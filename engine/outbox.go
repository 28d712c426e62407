package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/surge-retail/surge/engine/orders"
	"github.com/surge-retail/surge/inventory"
)

// With a store that has an outbox (inventory.Outbox: the Redis backend),
// paying a reservation hands its order to the outbox in the same atomic
// step as the confirmation, so that no paid reservation is ever without
// its order on the way, whichever process dies when; OutboxWriters (in any
// `surge serve`, or `surge orders` processes) read the outbox as one
// consumer group, upsert a batch into the order store, then acknowledge
// it. A dead writer's entries are taken over by a live one after
// ClaimIdle. Upserts are idempotent by order id, so an entry written twice
// (a writer that died after the upsert and before the acknowledgement) is
// still one order (law 4). No restart is needed for anything.

// OutboxWriterOptions configures an OutboxWriter. The zero value of each
// field means its default.
type OutboxWriterOptions struct {
	// BatchMax is the most orders read and written at once. Default 256.
	BatchMax int
	// ClaimIdle is how long an entry delivered to another writer stays
	// unacknowledged before this one takes it over (the other writer is
	// taken to be dead). Default 10s.
	ClaimIdle time.Duration
	// Poll is the wait after a read that found nothing. Default 50ms.
	Poll time.Duration
	// RetryBackoffMax bounds the wait between retries of a failed read or
	// write (which start at Poll and double). Default 5s.
	RetryBackoffMax time.Duration
	// Consumer names this writer in the consumer group. Default
	// "<host>-<pid>-<random>".
	Consumer string
	// Logger receives failures. Default slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns o with zero fields set to their defaults.
func (o OutboxWriterOptions) WithDefaults() OutboxWriterOptions {
	if o.BatchMax <= 0 {
		o.BatchMax = 256
	}
	if o.ClaimIdle <= 0 {
		o.ClaimIdle = 10 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 50 * time.Millisecond
	}
	if o.RetryBackoffMax <= 0 {
		o.RetryBackoffMax = 5 * time.Second
	}
	if o.Consumer == "" {
		host, _ := os.Hostname()
		o.Consumer = host + "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(rand.Uint64()&0xffffff, 36)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// OutboxWriter writes the orders of an outbox into an order store.
type OutboxWriter struct {
	ob    inventory.Outbox
	store orders.Store
	opts  OutboxWriterOptions

	written  atomic.Int64 // orders upserted and acknowledged by this writer
	failures atomic.Int64 // failed reads, writes or acknowledgements
	bad      atomic.Int64 // entries that are no order (logged, dropped)

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
}

// NewOutboxWriter starts a writer of ob's orders into store. Close stops
// it.
func NewOutboxWriter(ob inventory.Outbox, store orders.Store, o OutboxWriterOptions) *OutboxWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &OutboxWriter{ob: ob, store: store, opts: o.WithDefaults(), cancel: cancel, done: make(chan struct{})}
	go w.run(ctx)
	return w
}

// Close stops the writer after the batch in hand (its entries are either
// acknowledged or left pending for another writer) and waits for it.
func (w *OutboxWriter) Close() {
	w.stopOnce.Do(w.cancel)
	<-w.done
}

// Written counts the orders this writer wrote and acknowledged.
func (w *OutboxWriter) Written() int64 { return w.written.Load() }

// Failures counts failed reads, writes and acknowledgements (retried).
func (w *OutboxWriter) Failures() int64 { return w.failures.Load() }

func (w *OutboxWriter) run(ctx context.Context) {
	defer close(w.done)
	wait := w.opts.Poll
	for ctx.Err() == nil {
		n, err := w.step(ctx)
		switch {
		case err != nil:
			if ctx.Err() != nil || errors.Is(err, inventory.ErrClosed) {
				return // stopped, or the store is gone for good
			}
			w.failures.Add(1)
			w.opts.Logger.Warn("engine: outbox writer", "consumer", w.opts.Consumer, "err", err)
			wait = min(2*wait, w.opts.RetryBackoffMax)
		case n == 0:
			wait = w.opts.Poll
		default:
			wait = 0 // more may be waiting
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// step reads one batch, writes its orders and acknowledges it.
func (w *OutboxWriter) step(ctx context.Context) (int, error) {
	entries, err := w.ob.ReadOutbox(ctx, w.opts.Consumer, w.opts.BatchMax, w.opts.ClaimIdle)
	if err != nil || len(entries) == 0 {
		return 0, err
	}
	list := make([]Order, 0, len(entries))
	for _, en := range entries {
		var o Order
		if err := json.Unmarshal(en.Data, &o); err != nil || orders.Check(&o) != nil {
			// Never an order (nothing Surge wrote): no retry can help.
			w.bad.Add(1)
			w.opts.Logger.Error("engine: outbox entry is not an order; dropped", "stream", en.Stream, "id", en.ID, "err", err)
			continue
		}
		list = append(list, o)
	}
	// The batch is written before it is acknowledged: a crash in between
	// leaves it pending, and whoever takes it over writes it again (the
	// same orders, by id). Stopping (ctx) does not cut a write short.
	wctx := context.WithoutCancel(ctx)
	if err := w.store.Upsert(wctx, list); err != nil {
		if errors.Is(err, orders.ErrInvalid) {
			return 0, fmt.Errorf("cannot write %d orders (left pending): %w", len(list), err)
		}
		return 0, fmt.Errorf("cannot write %d orders: %w", len(list), err)
	}
	if err := w.ob.AckOutbox(wctx, entries); err != nil {
		return 0, fmt.Errorf("cannot acknowledge %d written orders: %w", len(entries), err)
	}
	w.written.Add(int64(len(list)))
	return len(entries), nil
}
