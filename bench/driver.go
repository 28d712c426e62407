package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Request builds one request of a closed-loop worker. worker and seq
// identify the call so a scenario can vary users or keys; it fills req.
type Request func(worker, seq int, req *fasthttp.Request)

// Check decides whether a response counts as a success of the scenario.
type Check func(resp *fasthttp.Response) bool

// Throughput is what a closed-loop run measured.
type Throughput struct {
	Requests  int64
	Successes int64
	Errors    int64
	Elapsed   time.Duration
}

// PerSecond is successful requests per second.
func (t Throughput) PerSecond() float64 {
	if t.Elapsed <= 0 {
		return 0
	}
	return float64(t.Successes) / t.Elapsed.Seconds()
}

// ClosedLoop drives addr with `workers` connections, each sending the next
// request as soon as the previous answer arrives, for d. It measures the
// maximum throughput a server reaches on this machine; the load generator
// shares the machine's cores, which is why results are reported as ratios.
func ClosedLoop(ctx context.Context, addr string, workers int, d time.Duration, build Request, ok Check) (Throughput, error) {
	if workers < 1 || workers > 4096 {
		return Throughput{}, fmt.Errorf("bench: workers %d out of range 1..4096", workers)
	}
	client := &fasthttp.HostClient{
		Addr:                          addr,
		MaxConns:                      workers,
		ReadTimeout:                   10 * time.Second,
		WriteTimeout:                  10 * time.Second,
		DisableHeaderNamesNormalizing: true,
		Dial: func(a string) (net.Conn, error) {
			return fasthttp.DialTimeout(a, 2*time.Second)
		},
	}
	defer client.CloseIdleConnections()
	var reqs, succ, errs atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for seq := 0; ctx.Err() == nil; seq++ {
				req.Reset()
				resp.Reset()
				build(w, seq, req)
				req.SetHost(addr)
				err := client.DoDeadline(req, resp, deadline.Add(5*time.Second))
				reqs.Add(1)
				switch {
				case err != nil:
					if !errors.Is(err, fasthttp.ErrTimeout) && ctx.Err() == nil {
						firstErr.CompareAndSwap(nil, err)
					}
					errs.Add(1)
				case ok(resp):
					succ.Add(1)
				default:
					errs.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	t := Throughput{Requests: reqs.Load(), Successes: succ.Load(), Errors: errs.Load(), Elapsed: time.Since(start)}
	if t.Successes == 0 {
		if e, _ := firstErr.Load().(error); e != nil {
			return t, fmt.Errorf("bench: no successful request: %w", e)
		}
		return t, errors.New("bench: no successful request")
	}
	return t, nil
}

// Parallel runs op from `callers` goroutines for d and returns the
// successful operations per second. It is the in-process counterpart of
// ClosedLoop, for backends measured without HTTP.
func Parallel(ctx context.Context, callers int, d time.Duration, op func(caller, seq int) error) (Throughput, error) {
	if callers < 1 || callers > 4096 {
		return Throughput{}, fmt.Errorf("bench: callers %d out of range 1..4096", callers)
	}
	var reqs, succ, errs atomic.Int64
	var firstErr atomic.Value
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for seq := 0; ctx.Err() == nil; seq++ {
				err := op(c, seq)
				reqs.Add(1)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					errs.Add(1)
					continue
				}
				succ.Add(1)
			}
		}(c)
	}
	wg.Wait()
	t := Throughput{Requests: reqs.Load(), Successes: succ.Load(), Errors: errs.Load(), Elapsed: time.Since(start)}
	if t.Successes == 0 {
		if e, _ := firstErr.Load().(error); e != nil {
			return t, fmt.Errorf("bench: no successful operation: %w", e)
		}
		return t, errors.New("bench: no successful operation")
	}
	return t, nil
}

// alternateSegments is how many slices each side of a comparison gets.
const alternateSegments = 4

// Alternate measures a floor and Surge in alternating slices of d (floor,
// Surge, floor, Surge, ...) and adds each side's slices up, so that a
// change in the machine's state during the run (another process, the disk,
// the page cache) lands on both sides of the ratio rather than on one.
func Alternate(d time.Duration, floor, surge func(d time.Duration) (Throughput, error)) (f, s Throughput, err error) {
	slice := d / alternateSegments
	add := func(a, b Throughput) Throughput {
		return Throughput{Requests: a.Requests + b.Requests, Successes: a.Successes + b.Successes, Errors: a.Errors + b.Errors, Elapsed: a.Elapsed + b.Elapsed}
	}
	for i := 0; i < alternateSegments; i++ {
		ft, err := floor(slice)
		if err != nil {
			return f, s, fmt.Errorf("floor: %w", err)
		}
		st, err := surge(slice)
		if err != nil {
			return f, s, err
		}
		f, s = add(f, ft), add(s, st)
	}
	return f, s, nil
}
