package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"

	"github.com/surge-retail/surge/loadtest"
)

// Latency is what an open-model run measured. Latencies count from the
// intended send time, so a stalled server (or a load generator that could
// not keep up) is charged for every request that went out late: no
// coordinated omission, and nothing dropped to flatter the figures.
type Latency struct {
	Rate      float64 // intended arrivals per second
	Sent      int64
	Successes int64
	Errors    int64
	// Late counts requests sent more than a millisecond after their
	// intended time because every worker was busy.
	Late      int64
	P50, P90  time.Duration
	P99, P999 time.Duration
	Max       time.Duration
}

const (
	// openLoopWorkersMax bounds the requests in flight (and connections) of
	// an open-model run.
	openLoopWorkersMax = 256
	// openLoopArrivalsMax bounds the arrivals of one run (their intended
	// times are computed up front: 8 bytes each).
	openLoopArrivalsMax = 10_000_000
)

// OpenLoop sends requests at a fixed rate for d, whatever the server does,
// and measures latency from each request's intended send time. Each worker
// claims the next arrival, sleeps until its intended time (not at all if it
// is already past) and sends it; when every worker is busy the arrivals
// wait and their latency shows it.
func OpenLoop(ctx context.Context, addr string, rate float64, d time.Duration, build Request, ok Check) (Latency, error) {
	if rate <= 0 || rate > 1e6 {
		return Latency{}, fmt.Errorf("bench: rate %.0f out of range", rate)
	}
	n := rate*d.Seconds() + 1
	if d <= 0 || n > openLoopArrivalsMax {
		return Latency{}, fmt.Errorf("bench: %.0f/s for %v is out of range (at most %d arrivals)", rate, d, openLoopArrivalsMax)
	}
	offsets := loadtest.Arrival{Rate: rate, Duration: d}.Offsets(int(n))
	client := &fasthttp.HostClient{Addr: addr, MaxConns: openLoopWorkersMax, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var (
		next                   atomic.Int64
		sent, succ, errs, late atomic.Int64
		histMu                 sync.Mutex
		wg                     sync.WaitGroup
	)
	hist := hdrhistogram.New(1, int64(30*time.Second/time.Microsecond), 3)
	start := time.Now()
	for w := 0; w < openLoopWorkersMax; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(offsets) {
					return
				}
				intended := start.Add(offsets[i])
				if wait := time.Until(intended); wait > 0 {
					time.Sleep(wait)
				} else if wait < -time.Millisecond {
					late.Add(1)
				}
				req.Reset()
				resp.Reset()
				build(w, i, req)
				req.SetHost(addr)
				err := client.DoTimeout(req, resp, 10*time.Second)
				lat := time.Since(intended)
				sent.Add(1)
				if err != nil || !ok(resp) {
					errs.Add(1)
				} else {
					succ.Add(1)
				}
				histMu.Lock()
				_ = hist.RecordValue(lat.Microseconds())
				histMu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	q := func(p float64) time.Duration { return time.Duration(hist.ValueAtQuantile(p)) * time.Microsecond }
	return Latency{
		Rate: rate, Sent: sent.Load(), Successes: succ.Load(), Errors: errs.Load(), Late: late.Load(),
		P50: q(50), P90: q(90), P99: q(99), P999: q(99.9), Max: time.Duration(hist.Max()) * time.Microsecond,
	}, nil
}
