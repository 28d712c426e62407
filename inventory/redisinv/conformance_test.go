package redisinv_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/invtest"
	"github.com/surge-retail/surge/inventory/redisinv"
)

// factory returns an invtest.Factory over one redis-server: each call
// opens a Store under a fresh key prefix, so every store is empty without
// a server (or a FLUSHALL) per subtest.
func factory(t *testing.T) invtest.Factory {
	srv := redistest.Start(t)
	return func(tb testing.TB, o inventory.Options) inventory.Store {
		return open(tb, srv, "", o)
	}
}

func TestConformance(t *testing.T) {
	invtest.Run(t, factory(t))
}

// TestConformanceUnbatched runs the suite with group commit off
// (BatchMax 1): every reservation is its own script call.
func TestConformanceUnbatched(t *testing.T) {
	srv := redistest.Start(t)
	var seq atomic.Int64
	invtest.Run(t, func(tb testing.TB, o inventory.Options) inventory.Store {
		s, err := redisinv.Open(context.Background(), redisinv.Options{Options: o, Addr: srv.Addr,
			Prefix: fmt.Sprintf("unbatched%d", seq.Add(1)), BatchMax: 1})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		return s
	})
}

func TestStress(t *testing.T) {
	invtest.Stress(t, factory(t))
}

func TestModel(t *testing.T) {
	invtest.Model(t, factory(t))
}

// nodes is a Store that sends each call to the next of several Stores (as
// if consecutive requests hit different gateway nodes), all on one server
// and prefix. Every answer must be the same as one node's.
type nodes struct {
	all  []inventory.Store
	next atomic.Uint64
}

func (n *nodes) pick() inventory.Store { return n.all[n.next.Add(1)%uint64(len(n.all))] }

func (n *nodes) CreatePool(ctx context.Context, pool string, supplied int64) error {
	return n.pick().CreatePool(ctx, pool, supplied)
}
func (n *nodes) Reserve(ctx context.Context, req inventory.ReserveRequest) (inventory.Reservation, error) {
	return n.pick().Reserve(ctx, req)
}
func (n *nodes) Confirm(ctx context.Context, id string) (inventory.Reservation, error) {
	return n.pick().Confirm(ctx, id)
}
func (n *nodes) Release(ctx context.Context, id string) (inventory.Reservation, error) {
	return n.pick().Release(ctx, id)
}
func (n *nodes) Refund(ctx context.Context, id string) (inventory.Reservation, error) {
	return n.pick().Refund(ctx, id)
}
func (n *nodes) Expire(ctx context.Context, now time.Time, max int) ([]inventory.Reservation, error) {
	return n.pick().Expire(ctx, now, max)
}
func (n *nodes) Move(ctx context.Context, from, to string, qty int64) error {
	return n.pick().Move(ctx, from, to, qty)
}
func (n *nodes) Drain(ctx context.Context, from, to string) (int64, error) {
	return n.pick().Drain(ctx, from, to)
}
func (n *nodes) Send(ctx context.Context, from, to string, qty int64) (int64, int64, error) {
	return n.pick().Send(ctx, from, to, qty)
}
func (n *nodes) Receive(ctx context.Context, to, from string, sent int64) (int64, error) {
	return n.pick().Receive(ctx, to, from, sent)
}
func (n *nodes) Ledger(ctx context.Context, pool string) (inventory.Ledger, error) {
	return n.pick().Ledger(ctx, pool)
}
func (n *nodes) SetOnHand(ctx context.Context, pool string, onHand int64, seq uint64) (inventory.FeedResult, error) {
	return n.pick().SetOnHand(ctx, pool, onHand, seq)
}
func (n *nodes) Pool(ctx context.Context, pool string) (inventory.Pool, error) {
	return n.pick().Pool(ctx, pool)
}
func (n *nodes) Reservation(ctx context.Context, id string) (inventory.Reservation, error) {
	return n.pick().Reservation(ctx, id)
}
func (n *nodes) Scan(ctx context.Context, state inventory.State, cursor string, limit int) ([]inventory.Reservation, string, error) {
	return n.pick().Scan(ctx, state, cursor, limit)
}
func (n *nodes) Forget(ctx context.Context, id string) error {
	return n.pick().Forget(ctx, id)
}
func (n *nodes) Purge(ctx context.Context, before time.Time, max int) (int, error) {
	return n.pick().Purge(ctx, before, max)
}
func (n *nodes) ClosePool(ctx context.Context, pool string) error {
	return n.pick().ClosePool(ctx, pool)
}
func (n *nodes) Close() error {
	for _, s := range n.all {
		s.Close()
	}
	return nil
}

// TestThreeNodes runs the conformance suite, the stress tests and the
// model (with its linearizability check) through three Stores taking turns.
func TestThreeNodes(t *testing.T) {
	srv := redistest.Start(t)
	var seq atomic.Int64
	f := func(tb testing.TB, o inventory.Options) inventory.Store {
		prefix := fmt.Sprintf("nodes%d", seq.Add(1))
		n := &nodes{}
		for i := 0; i < 3; i++ {
			n.all = append(n.all, open(tb, srv, prefix, o))
		}
		return n
	}
	t.Run("Run", func(t *testing.T) { invtest.Run(t, f) })
	t.Run("Stress", func(t *testing.T) { invtest.Stress(t, f) })
	t.Run("Model", func(t *testing.T) { invtest.Model(t, f) })
}
