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
// intended send time, so a stalled server is charged for the requests
// queued behind the stall (no coordinated omission).
type Latency struct {
	Rate      float64 // intended arrivals per second
	Sent      int64
	Successes int64
	Errors    int64
	Drops     int64 // arrivals that found every worker busy
	P50, P90  time.Duration
	P99, P999 time.Duration
	Max       time.Duration
}

// openLoopWorkersMax bounds the requests in flight of an open-model run.
const openLoopWorkersMax = 512

// OpenLoop sends requests at a fixed rate for d, whatever the server does,
// and measures latency from each request's intended send time.
func OpenLoop(ctx context.Context, addr string, rate float64, d time.Duration, build Request, ok Check) (Latency, error) {
	if rate <= 0 || rate > 1e6 {
		return Latency{}, fmt.Errorf("bench: rate %.0f out of range", rate)
	}
	client := &fasthttp.HostClient{Addr: addr, MaxConns: openLoopWorkersMax, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	hist := hdrhistogram.New(1, int64(30*time.Second/time.Microsecond), 3)
	var histMu sync.Mutex
	var sent, succ, errs, drops atomic.Int64
	type job struct {
		intended time.Time
		seq      int
	}
	jobs := make(chan job, openLoopWorkersMax)
	var wg sync.WaitGroup
	for w := 0; w < openLoopWorkersMax; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for j := range jobs {
				req.Reset()
				resp.Reset()
				build(w, j.seq, req)
				req.SetHost(addr)
				err := client.DoTimeout(req, resp, 10*time.Second)
				lat := time.Since(j.intended)
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
	arrivals := loadtest.Arrival{Rate: rate, Duration: d}
	sched := arrivals.Schedule(int(rate*d.Seconds()) + 1)
	start := time.Now()
	for seq := 0; ; seq++ {
		off, more := sched.Next()
		if !more || ctx.Err() != nil {
			break
		}
		intended := start.Add(off)
		if wait := time.Until(intended); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case jobs <- job{intended: intended, seq: seq}:
		default:
			drops.Add(1)
		}
	}
	close(jobs)
	wg.Wait()
	q := func(p float64) time.Duration { return time.Duration(hist.ValueAtQuantile(p)) * time.Microsecond }
	return Latency{
		Rate: rate, Sent: sent.Load(), Successes: succ.Load(), Errors: errs.Load(), Drops: drops.Load(),
		P50: q(50), P90: q(90), P99: q(99), P999: q(99.9), Max: time.Duration(hist.Max()) * time.Microsecond,
	}, nil
}
