package invtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/surge-retail/surge/inventory"
)

// Linearizability: clients race reserve, release and read on one small pool;
// porcupine checks that the history has a sequential order that respects
// real time and the model below (the pool's available count).

type linKind uint8

const (
	linReserve linKind = iota
	linRelease
	linRead
)

type linIn struct {
	kind linKind
	qty  int64
}

type linOut struct {
	ok        bool  // reserve succeeded (false: sold out)
	available int64 // read
}

// linModel is the sequential specification: state is the available count.
func linModel(supply int64) porcupine.Model {
	return porcupine.Model{
		Init: func() any { return supply },
		Step: func(state, input, output any) (bool, any) {
			avail := state.(int64)
			in, out := input.(linIn), output.(linOut)
			switch in.kind {
			case linReserve:
				if out.ok {
					return avail >= in.qty, avail - in.qty
				}
				return avail < in.qty, avail
			case linRelease:
				return true, avail + in.qty
			default:
				return out.available == avail, avail
			}
		},
		Equal: func(a, b any) bool { return a.(int64) == b.(int64) },
		DescribeOperation: func(input, output any) string {
			in, out := input.(linIn), output.(linOut)
			switch in.kind {
			case linReserve:
				return fmt.Sprintf("reserve(%d) -> %v", in.qty, out.ok)
			case linRelease:
				return fmt.Sprintf("release(%d)", in.qty)
			}
			return fmt.Sprintf("read -> %d", out.available)
		},
	}
}

const (
	linClients   = 8
	linOpsClient = 40
	linSupply    = 6
)

// recordHistory runs the clients against s and returns what they saw.
func recordHistory(t testing.TB, s inventory.Store, seed uint64) []porcupine.Operation {
	ctx := context.Background()
	const pool = "lin:p"
	if err := s.CreatePool(ctx, pool, linSupply); err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64 // logical time: strictly increasing, no wall clock
	var mu sync.Mutex
	var ops []porcupine.Operation
	var wg sync.WaitGroup
	errs := make([]error, linClients)
	for c := range linClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(c)))
			type hold struct {
				id  string
				qty int64
			}
			var holds []hold
			for i := range linOpsClient {
				var in linIn
				var out linOut
				call := clock.Add(1)
				switch k := rng.IntN(10); {
				case k < 3 && len(holds) > 0:
					h := holds[len(holds)-1]
					holds = holds[:len(holds)-1]
					in = linIn{kind: linRelease, qty: h.qty}
					if _, err := s.Release(ctx, h.id); err != nil {
						errs[c] = err
						return
					}
				case k < 7:
					in = linIn{kind: linReserve, qty: 1 + rng.Int64N(2)}
					id := fmt.Sprintf("lin:c%d-%d", c, i)
					_, err := s.Reserve(ctx, inventory.ReserveRequest{
						ID: id, User: fmt.Sprintf("u%d", c), TTL: time.Hour,
						Lines: []inventory.Line{{Pool: pool, Quantity: in.qty}},
					})
					switch {
					case err == nil:
						out.ok = true
						holds = append(holds, hold{id, in.qty})
					case !errors.Is(err, inventory.ErrSoldOut):
						errs[c] = err
						return
					}
				default:
					in = linIn{kind: linRead}
					p, err := s.Pool(ctx, pool)
					if err != nil {
						errs[c] = err
						return
					}
					out.available = p.Available
				}
				ret := clock.Add(1)
				mu.Lock()
				ops = append(ops, porcupine.Operation{ClientId: c, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for c, err := range errs {
		if err != nil {
			t.Fatalf("client %d: %v", c, err)
		}
	}
	return ops
}

func linearizable(t *testing.T, f Factory) {
	for seed := range uint64(3) {
		s := f(t, inventory.Options{})
		ops := recordHistory(t, s, seed)
		if res := porcupine.CheckOperations(linModel(linSupply), ops); !res {
			t.Fatalf("seed %d: history of %d operations is not linearizable", seed, len(ops))
		}
	}
}
