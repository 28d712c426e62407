package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/surge-retail/surge/internal/cputime"
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

// Rounds is an alternating comparison of two sides, A (the floor) and B
// (Surge), in rounds: each side's throughput of every round, and the CPU
// time this process spent in it (the client and both servers run here).
type Rounds struct {
	A, B       []Throughput
	ACPU, BCPU []time.Duration
	// Ratios: B's requests per second over A's, each round; CPURatios:
	// B's successful requests per CPU-second over A's, each round. On a
	// machine of its own a closed loop is CPU-bound and the two agree;
	// when other processes take the cores, the second moves far less.
	Ratios, CPURatios []float64
}

// processCPU is the CPU time (user and system) this process used so far,
// or 0 where it cannot be read: a round with no CPU time has no CPU ratio.
func processCPU() time.Duration {
	d, _ := cputime.Process()
	return d
}

// AlternateRounds measures a and b n times each, for slice each time, in
// turn: a then b in even rounds, b then a in odd ones (so neither side
// always runs right after the other, warm or cold).
func AlternateRounds(n int, slice time.Duration, a, b func(d time.Duration) (Throughput, error)) (Rounds, error) {
	var r Rounds
	timed := func(f func(d time.Duration) (Throughput, error)) (Throughput, time.Duration, error) {
		c0 := processCPU()
		t, err := f(slice)
		return t, processCPU() - c0, err
	}
	for i := 0; i < n; i++ {
		var at, bt Throughput
		var ac, bc time.Duration
		var err error
		if i%2 == 0 {
			if at, ac, err = timed(a); err == nil {
				bt, bc, err = timed(b)
			}
		} else {
			if bt, bc, err = timed(b); err == nil {
				at, ac, err = timed(a)
			}
		}
		if err != nil {
			return r, err
		}
		r.A, r.B = append(r.A, at), append(r.B, bt)
		r.ACPU, r.BCPU = append(r.ACPU, ac), append(r.BCPU, bc)
		if ar := at.PerSecond(); ar > 0 {
			r.Ratios = append(r.Ratios, bt.PerSecond()/ar)
		}
		if ac > 0 && bc > 0 && at.Successes > 0 {
			r.CPURatios = append(r.CPURatios, (float64(bt.Successes)/bc.Seconds())/(float64(at.Successes)/ac.Seconds()))
		}
	}
	return r, nil
}

func sumThroughput(ts []Throughput) Throughput {
	var s Throughput
	for _, t := range ts {
		s.Requests += t.Requests
		s.Successes += t.Successes
		s.Errors += t.Errors
		s.Elapsed += t.Elapsed
	}
	return s
}

// median is the median of vs (0 without any).
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// spread is the lowest and highest of vs.
func spread(vs []float64) (lo, hi float64) {
	if len(vs) == 0 {
		return 0, 0
	}
	return slices.Min(vs), slices.Max(vs)
}

// Pooled is B's throughput over A's with every round added up.
func (r Rounds) Pooled() float64 {
	a := sumThroughput(r.A).PerSecond()
	if a <= 0 {
		return 0
	}
	return sumThroughput(r.B).PerSecond() / a
}

// Row is the comparison as a row: each side's throughput over all rounds,
// and as its ratio the median of the rounds' ratios of requests per
// CPU-second (the rounds' throughput ratios are in the scenario's words).
func (r Rounds) Row(key, scenario, unit string) Row {
	clo, chi := spread(r.CPURatios)
	lo, hi := spread(r.Ratios)
	return Row{Key: key, Unit: unit,
		Scenario: fmt.Sprintf("%s (%d alternating rounds; the ratio is the median of the rounds' ratios of reserves per CPU-second of the process, %.2f–%.2f; of reserves per second: median %.2f, %.2f–%.2f, all rounds pooled %.2f)",
			scenario, len(r.CPURatios), clo, chi, median(r.Ratios), lo, hi, r.Pooled()),
		Surge: sumThroughput(r.B).PerSecond(), Floor: sumThroughput(r.A).PerSecond(), Median: median(r.CPURatios)}
}
