package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/surge-retail/surge/engine"
)

// The overload scenario (group "overload"): `surge serve` (pebble, in its
// own process, so that its resident memory is its own) takes a storm of
// reserves on several flash sales at five times the reserve capacity
// measured in the same run, with pays of held reservations beside them.
// It reports the share of pays shed, the admitted reserves' latency next
// to the unloaded latency of the same server, the writes' adaptive limit,
// and the server's resident memory before the storm, at its peak, and
// after the sales ended and their holds ran out.

// OverloadOptions configures RunOverload.
type OverloadOptions struct {
	// Surge is the binary that serves (`surge serve`). Required.
	Surge string
	// Storm is how long the reserves arrive at 5x capacity. Default 5s.
	Storm time.Duration
	// Sales is the number of flash sales of the storm. Default 4.
	Sales int
	// UsersPerSale is the users logged in per sale, each of whom reserves
	// at least once (the storm lasts longer than Storm if it must).
	// Default 25,000.
	UsersPerSale int
	// SettleMax bounds the wait for the server's memory after the holds
	// ended. Default 150s (the Go runtime forces a collection every two
	// minutes on an idle process; the scavenger returns pages after it).
	SettleMax time.Duration
	// Pays is the number of held reservations paid during the storm.
	// Default 1000.
	Pays int
	// HoldSeconds is the hold of the storm's reservations: the memory
	// after is read once they ran out. Default 10.
	HoldSeconds int
	// ServerCores is the number of cores the server may run on (its
	// CPU affinity, set with taskset; the last ones of those this process
	// may run on), at most as many as those.
	// Default 1: the load generator shares the machine, and on two cores
	// it can offer five times the capacity only of a server on one. The
	// server chooses its GOMAXPROCS itself, as on a machine of that size.
	ServerCores int
	// ServerEnv is more environment of the server, after the bench's own
	// (to compare settings: SURGE_ADMISSION_WRITES_MIN=64, say).
	ServerEnv []string
	// Log receives progress lines. Default io.Discard.
	Log io.Writer
}

func (o OverloadOptions) withDefaults() OverloadOptions {
	if o.Storm <= 0 {
		o.Storm = 5 * time.Second
	}
	if o.Sales <= 0 {
		o.Sales = 4
	}
	if o.UsersPerSale <= 0 {
		o.UsersPerSale = 25_000
	}
	if o.SettleMax <= 0 {
		o.SettleMax = 150 * time.Second
	}
	if o.Pays <= 0 {
		o.Pays = 1000
	}
	if o.HoldSeconds <= 0 {
		o.HoldSeconds = 10
	}
	if o.ServerCores <= 0 {
		o.ServerCores = 1
	}
	allowed := runtime.NumCPU()
	if cpus, err := allowedCPUs(); err == nil {
		allowed = len(cpus)
	}
	o.ServerCores = min(o.ServerCores, allowed)
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o
}

// Overload is what the overload scenario measured.
type Overload struct {
	// ServerCores is the server's CPU affinity (cores); ServerProcs the
	// GOMAXPROCS it chose on them (its /metrics).
	ServerCores, ServerProcs int
	Sales                    int
	Users                    int
	// Capacity is reserves/s of a closed loop (256 connections, 2s).
	Capacity float64
	// Offered is the storm's arrival rate (5x Capacity); Sent what the
	// generator sent; Late the sends over 10 ms behind their time.
	Offered                       float64
	Storm                         time.Duration
	Sent, Admitted, Shed, Refused int64
	Errors, Late                  int64
	Pays, PaysOK, PaysShed        int64
	// PaysFailed: pays answered neither 0 nor 503 (or not at all).
	PaysFailed int64
	// Unloaded: reserves one at a time on the same server before the
	// storm. Admitted: the storm's successful reserves, from their
	// intended send time.
	UnloadedP50, UnloadedP99 time.Duration
	AdmittedP50, AdmittedP99 time.Duration
	// AdmittedSentP99 counts from the moment the request was sent: what
	// the server (and the socket queue in front of it) took, without the
	// generator's own lag.
	AdmittedSentP99 time.Duration
	// ServerReserveP99 and EngineReserveP99 are the server's own view of
	// the storm's reserves, from its /metrics histograms (bucket
	// interpolation): from routing to the answer written (sheds too), and
	// the time in the engine and the store below it (admitted only). Set
	// next to AdmittedSentP99 they say where an admitted reserve waited:
	// in the engine (the store's group commit), in the gateway, or before
	// the server read it (socket, scheduler, the generator's own lag).
	ServerReserveP99, EngineReserveP99 time.Duration
	// SchedWaitMean is the server's mean wait of a goroutine ready to run
	// for a P during the storm (runtime/metrics /sched/latencies, from
	// its /metrics): a P held by a blocking syscall, or too few for the
	// work, shows here.
	SchedWaitMean         time.Duration
	LimitMax, LimitLowest int64
	// Resident memory of the server, KiB: before the storm (sales made,
	// nobody logged in), the highest seen, and after the holds ended
	// (AfterWait later, at most SettleMax).
	RSSBeforeKiB, RSSPeakKiB, RSSAfterKiB int64
	AfterWait                             time.Duration
	// The Go heap of the server (its /metrics), KiB, before and after:
	// in use (live objects and fragments), and idle but not yet returned
	// to the OS (freed heap still resident). RSS is these, the runtime's
	// other memory, Pebble's caches and the binary's pages.
	HeapInuseBeforeKiB, HeapInuseAfterKiB int64
	HeapIdleBeforeKiB, HeapIdleAfterKiB   int64
	GoroutinesBefore, GoroutinesPeak      int64
	GoroutinesAfter                       int64
}

// PaysShedShare is the share of pays shed (the target is 0).
func (o *Overload) PaysShedShare() float64 {
	if o.Pays == 0 {
		return 0
	}
	return float64(o.PaysShed) / float64(o.Pays)
}

// RSSAfterRatio is RSS after over RSS before (the target is at most 1.5).
func (o *Overload) RSSAfterRatio() float64 {
	if o.RSSBeforeKiB == 0 {
		return 0
	}
	return float64(o.RSSAfterKiB) / float64(o.RSSBeforeKiB)
}

const (
	overloadConns   = 256
	overloadTimeout = 30 * time.Second
	// overloadPayHold is the hold of the reservations paid in the storm:
	// long, so that a pay slowed by the overload still finds its hold.
	overloadPayHold = 600
)

// RunOverload runs the overload scenario.
func RunOverload(ctx context.Context, o OverloadOptions) (*Overload, error) {
	o = o.withDefaults()
	if o.Surge == "" {
		return nil, fmt.Errorf("bench: overload needs the surge binary")
	}
	logf := func(format string, args ...any) { fmt.Fprintf(o.Log, "bench: overload: "+format+"\n", args...) }
	dir, err := os.MkdirTemp("", "surge-overload-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var env []string
	for _, kv := range surgeEnv() {
		if !strings.HasPrefix(kv, "SURGE_ADMISSION_") && !strings.HasPrefix(kv, "GOMAXPROCS=") {
			env = append(env, kv)
		}
	}
	env = append(env, o.ServerEnv...)
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return nil, fmt.Errorf("bench: overload pins the server to %d core(s) with taskset (util-linux): %w", o.ServerCores, err)
	}
	allowed, err := allowedCPUs()
	if err != nil {
		return nil, err
	}
	cores, err := serverCPUs(allowed, o.ServerCores)
	if err != nil {
		return nil, err
	}
	args := []string{"-c", cores, o.Surge, "serve", "--backend", "pebble", "--data", filepath.Join(dir, "data"), "--log-level", "warn"}
	srv, err := startProcess(ctx, taskset, args, filepath.Join(dir, "surge.log"), "--addr", env)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	base := "http://" + srv.addr
	pid := srv.cmd.Process.Pid // taskset execs surge: the same process
	res := &Overload{ServerCores: o.ServerCores, Sales: o.Sales, Storm: o.Storm, Pays: int64(o.Pays)}
	res.ServerProcs = int(metricValues(base, "go_sched_gomaxprocs_threads")[0])

	// Catalog and sales, as an operator makes them.
	cat := benchCatalog()
	for i := 0; i <= o.Sales+1; i++ {
		cat.Listings[i].OnHand = 900_000_000
	}
	body, _ := json.Marshal(cat)
	if _, err := call("PUT", base+"/admin/v1/catalog", externalAdminToken, body); err != nil {
		return nil, fmt.Errorf("cannot load the catalog: %w", err)
	}
	now := time.Now().UTC()
	saleIDs := make([]string, o.Sales)
	for i := range saleIDs {
		saleIDs[i] = fmt.Sprintf("storm-%d", i)
		spec, _ := json.Marshal(engine.FlashSaleSpec{SaleID: saleIDs[i], StoreID: "b1", SKUID: fmt.Sprintf("bk%d", i),
			Price: 9900, Quantity: 100_000_000, PerUserLimit: 1, HoldSeconds: int64(o.HoldSeconds),
			StartsAt: now.Add(-time.Second), EndsAt: now.Add(time.Hour)})
		if _, err := call("POST", base+"/admin/v1/flash-sales", externalAdminToken, spec); err != nil {
			return nil, fmt.Errorf("cannot create sale %s: %w", saleIDs[i], err)
		}
	}
	// The capacity sale: no per-user limit, so a closed loop of a few
	// users measures the reserve path.
	capSpec, _ := json.Marshal(engine.FlashSaleSpec{SaleID: "capacity", StoreID: "b1", SKUID: fmt.Sprintf("bk%d", o.Sales),
		Price: 9900, Quantity: 100_000_000, HoldSeconds: int64(o.HoldSeconds),
		StartsAt: now.Add(-time.Second), EndsAt: now.Add(time.Hour)})
	if _, err := call("POST", base+"/admin/v1/flash-sales", externalAdminToken, capSpec); err != nil {
		return nil, fmt.Errorf("cannot create the capacity sale: %w", err)
	}
	paySpec, _ := json.Marshal(engine.FlashSaleSpec{SaleID: "pays", StoreID: "b1", SKUID: fmt.Sprintf("bk%d", o.Sales+1),
		Price: 9900, Quantity: 100_000_000, PerUserLimit: 1, HoldSeconds: overloadPayHold,
		StartsAt: now.Add(-time.Second), EndsAt: now.Add(time.Hour)})
	if _, err := call("POST", base+"/admin/v1/flash-sales", externalAdminToken, paySpec); err != nil {
		return nil, fmt.Errorf("cannot create the pays sale: %w", err)
	}
	time.Sleep(2 * time.Second)
	res.RSSBeforeKiB, _ = rssKiB(pid)
	res.HeapInuseBeforeKiB, res.HeapIdleBeforeKiB = heapKiB(base)
	res.GoroutinesBefore = goroutines(base)
	logf("server pid %d on core(s) %s, GOMAXPROCS %d: RSS before %d MiB, %d goroutines", pid, cores, res.ServerProcs, res.RSSBeforeKiB>>10, res.GoroutinesBefore)

	client := &fasthttp.HostClient{Addr: srv.addr, MaxConns: 2 * overloadConns, ReadTimeout: overloadTimeout, WriteTimeout: overloadTimeout}
	defer client.CloseIdleConnections()
	capTokens, err := loginMany(ctx, client, "cap", overloadConns)
	if err != nil {
		return nil, err
	}
	// Unloaded latency, then capacity.
	var unloaded []time.Duration
	for i := 0; i < 300; i++ {
		t0 := time.Now()
		if code, _, err := reserve(client, "capacity", capTokens[i%len(capTokens)], ""); err != nil || code != 200 {
			return nil, fmt.Errorf("unloaded reserve: HTTP %d %v", code, err)
		}
		unloaded = append(unloaded, time.Since(t0))
	}
	res.UnloadedP50, res.UnloadedP99 = quantile(unloaded, 50), quantile(unloaded, 99)
	ct, err := ClosedLoop(ctx, srv.addr, overloadConns, 2*time.Second, func(w, _ int, req *fasthttp.Request) {
		reserveInto(req, "capacity", capTokens[w%len(capTokens)], "")
	}, postOK)
	if err != nil {
		return nil, fmt.Errorf("capacity: %w", err)
	}
	res.Capacity = ct.PerSecond()
	res.Offered = 5 * res.Capacity
	users := o.UsersPerSale * o.Sales
	arrivals := max(int(res.Offered*o.Storm.Seconds()), users)
	res.Users = users
	res.Storm = time.Duration(float64(arrivals) / res.Offered * float64(time.Second))
	logf("capacity %.0f reserves/s; storm %.0f/s for %v: %d reserves over %d users; unloaded p99 %v", res.Capacity, res.Offered, res.Storm.Round(time.Millisecond), arrivals, users, res.UnloadedP99)

	tokens, err := loginMany(ctx, client, "storm", users)
	if err != nil {
		return nil, err
	}
	payTokens, err := loginMany(ctx, client, "payer", o.Pays)
	if err != nil {
		return nil, err
	}
	payIDs := make([]string, o.Pays)
	for i := range payIDs {
		code, b, err := reserve(client, "pays", payTokens[i], "")
		if err != nil || code != 200 {
			return nil, fmt.Errorf("reserve to pay: HTTP %d %v %s", code, err, b)
		}
		var env struct {
			Data engine.Reservation `json:"data"`
		}
		if err := json.Unmarshal(b, &env); err != nil {
			return nil, err
		}
		payIDs[i] = env.Data.ReservationID
	}

	// The storm.
	var (
		next                                atomic.Int64
		sent, okN, shedN, refN, errN, lateN atomic.Int64
		paysOK, paysShed, paysFailed        atomic.Int64
		mu                                  sync.Mutex
		admitted, admittedSent              []time.Duration
		wg                                  sync.WaitGroup
	)
	stormCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	res.LimitLowest = 1 << 62
	go func() { // RSS, goroutines and the writes limit, every 250 ms
		defer close(sampled)
		for stormCtx.Err() == nil {
			if kb, err := rssKiB(pid); err == nil && kb > res.RSSPeakKiB {
				res.RSSPeakKiB = kb
			}
			if g := goroutines(base); g > res.GoroutinesPeak {
				res.GoroutinesPeak = g
			}
			if lim, max := writesLimit(base); lim > 0 {
				res.LimitLowest, res.LimitMax = min(res.LimitLowest, lim), max
			}
			select {
			case <-stormCtx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	gwBefore := readHistogram(base, "surge_gateway_request_duration_seconds", "sale_reserve")
	engBefore := readHistogram(base, "surge_engine_call_duration_seconds", "sale_reserve")
	schedBefore := metricValues(base, "go_sched_latencies_seconds_sum", "go_sched_latencies_seconds_count")
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	start := time.Now()
	for w := 0; w < overloadConns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= arrivals {
					return
				}
				intended := start.Add(time.Duration(float64(i) / res.Offered * float64(time.Second)))
				if wait := time.Until(intended); wait > 0 {
					time.Sleep(wait)
				} else if wait < -10*time.Millisecond {
					lateN.Add(1)
				}
				u := i % users
				req.Reset()
				resp.Reset()
				reserveInto(req, saleIDs[u%len(saleIDs)], tokens[u], run+"-"+strconv.Itoa(i))
				req.SetHost(srv.addr)
				sentAt := time.Now()
				err := client.DoTimeout(req, resp, overloadTimeout)
				lat := time.Since(intended)
				fromSend := time.Since(sentAt)
				sent.Add(1)
				switch {
				case err != nil:
					errN.Add(1)
				case resp.StatusCode() == 200:
					okN.Add(1)
					mu.Lock()
					admitted = append(admitted, lat)
					admittedSent = append(admittedSent, fromSend)
					mu.Unlock()
				case resp.StatusCode() == 503 && len(resp.Header.Peek("Retry-After")) > 0:
					shedN.Add(1)
				case resp.StatusCode() < 500:
					refN.Add(1) // sold out, limit, sale gate (429): answered, not shed
				default:
					errN.Add(1)
				}
			}
		}()
	}
	payGap := res.Storm / time.Duration(o.Pays)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < o.Pays && ctx.Err() == nil; i += 16 {
				time.Sleep(time.Until(start.Add(time.Duration(i) * payGap)))
				b, _ := json.Marshal(map[string]string{"payment_id": "storm-pay-" + strconv.Itoa(i)})
				code, _, err := post(client, "/api/v1/reservations/"+payIDs[i]+"/pay", payTokens[i], "", b)
				switch {
				case err == nil && code == 200:
					paysOK.Add(1)
				case code == 503:
					paysShed.Add(1)
				default:
					paysFailed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	res.ServerReserveP99 = readHistogram(base, "surge_gateway_request_duration_seconds", "sale_reserve").quantileSince(gwBefore, 0.99)
	res.EngineReserveP99 = readHistogram(base, "surge_engine_call_duration_seconds", "sale_reserve").quantileSince(engBefore, 0.99)
	if sched := metricValues(base, "go_sched_latencies_seconds_sum", "go_sched_latencies_seconds_count"); sched[1] > schedBefore[1] {
		res.SchedWaitMean = time.Duration((sched[0] - schedBefore[0]) / (sched[1] - schedBefore[1]) * float64(time.Second))
	}
	stopSampling()
	<-sampled
	res.Sent, res.Admitted, res.Shed, res.Refused, res.Errors, res.Late = sent.Load(), okN.Load(), shedN.Load(), refN.Load(), errN.Load(), lateN.Load()
	res.PaysOK, res.PaysShed, res.PaysFailed = paysOK.Load(), paysShed.Load(), paysFailed.Load()
	res.AdmittedP50, res.AdmittedP99 = quantile(admitted, 50), quantile(admitted, 99)
	res.AdmittedSentP99 = quantile(admittedSent, 99)
	logf("storm took %v: sent %d, admitted %d, shed %d, refused %d, errors %d, late %d; pays %d ok, %d shed; admitted p99 %v (from the send %v; server's own p99 %v, in the engine %v; ready goroutines waited %v on average for a P); writes limit lowest %d of %d",
		time.Since(start).Round(time.Millisecond), res.Sent, res.Admitted, res.Shed, res.Refused, res.Errors, res.Late,
		res.PaysOK, res.PaysShed, res.AdmittedP99, res.AdmittedSentP99, res.ServerReserveP99, res.EngineReserveP99, res.SchedWaitMean, res.LimitLowest, res.LimitMax)

	// The sales end; their holds run out; memory should come back.
	for _, id := range append(saleIDs, "capacity", "pays") {
		if _, err := call("POST", base+"/admin/v1/flash-sales/"+id+"/end", externalAdminToken, nil); err != nil {
			return nil, fmt.Errorf("cannot end %s: %w", id, err)
		}
	}
	clear(tokens)
	tokens, admitted, admittedSent = nil, nil, nil
	client.CloseIdleConnections() // the storm's connections go, as a crowd's do
	deadline := time.Now().Add(time.Duration(o.HoldSeconds)*time.Second + time.Minute)
	for held := int64(1); held > 0 && time.Now().Before(deadline); time.Sleep(time.Second) {
		held = heldUnits(base)
	}
	ended := time.Now()
	for {
		kb, err := rssKiB(pid)
		if err != nil {
			return nil, err
		}
		res.RSSAfterKiB, res.AfterWait = kb, time.Since(ended)
		if kb <= res.RSSBeforeKiB*3/2 || res.AfterWait >= o.SettleMax || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	res.GoroutinesAfter = goroutines(base)
	res.HeapInuseAfterKiB, res.HeapIdleAfterKiB = heapKiB(base)
	logf("RSS before %d MiB, peak %d MiB, after %d MiB (%.2fx, %v after the holds ended); Go heap in use %d -> %d MiB, idle not returned %d -> %d MiB; goroutines %d / %d / %d",
		res.RSSBeforeKiB>>10, res.RSSPeakKiB>>10, res.RSSAfterKiB>>10, res.RSSAfterRatio(), res.AfterWait.Round(time.Second),
		res.HeapInuseBeforeKiB>>10, res.HeapInuseAfterKiB>>10, res.HeapIdleBeforeKiB>>10, res.HeapIdleAfterKiB>>10,
		res.GoroutinesBefore, res.GoroutinesPeak, res.GoroutinesAfter)
	return res, nil
}

// rssKiB is a process's resident set (VmRSS), KiB.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// goroutines reads go_goroutines from /metrics (0 if it cannot).
func goroutines(base string) int64 {
	return int64(metricValues(base, "go_goroutines")[0])
}

// heapKiB reads the Go heap in use, and idle but not released to the OS,
// from /metrics (0 if it cannot).
func heapKiB(base string) (inuse, idleKept int64) {
	v := metricValues(base, "go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes")
	return int64(v[0]) >> 10, int64(v[1]-v[2]) >> 10
}

// metricValues reads unlabelled samples from /metrics, 0 for those it
// cannot read.
func metricValues(base string, names ...string) []float64 {
	out := make([]float64, len(names))
	var req fasthttp.Request
	var resp fasthttp.Response
	req.SetRequestURI(base + "/metrics")
	if err := fasthttp.DoTimeout(&req, &resp, 5*time.Second); err != nil {
		return out
	}
	for _, line := range bytes.Split(resp.Body(), []byte("\n")) {
		for i, name := range names {
			if v, ok := bytes.CutPrefix(line, []byte(name+" ")); ok {
				out[i], _ = strconv.ParseFloat(string(v), 64)
			}
		}
	}
	return out
}

// writesLimit reads the writes' bound in force and its maximum from the
// stats (0 if it cannot).
func writesLimit(base string) (limit, max int64) {
	data, err := call("GET", base+"/admin/v1/stats", externalAdminToken, nil)
	if err != nil {
		return 0, 0
	}
	var st struct {
		WritesLimit struct {
			Limit int64 `json:"limit"`
			Max   int64 `json:"max"`
		} `json:"writes_limit"`
	}
	_ = json.Unmarshal(data, &st)
	return st.WritesLimit.Limit, st.WritesLimit.Max
}

// heldUnits adds up the held units of every sale (1 if it cannot tell).
func heldUnits(base string) int64 {
	data, err := call("GET", base+"/admin/v1/stats", externalAdminToken, nil)
	if err != nil {
		return 1
	}
	var st struct {
		Sales map[string]struct {
			Held int64 `json:"held"`
		} `json:"sales"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return 1
	}
	var n int64
	for _, s := range st.Sales {
		n += s.Held
	}
	return n
}

// loginMany logs n users in (codes prefix0..), 64 at a time.
func loginMany(ctx context.Context, client *fasthttp.HostClient, prefix string, n int) ([]string, error) {
	out := make([]string, n)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && firstErr.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				b, _ := json.Marshal(map[string]string{"code": prefix + strconv.Itoa(i)})
				code, body, err := post(client, "/api/v1/session", "", "", b)
				var env struct {
					Data struct {
						Token string `json:"token"`
					} `json:"data"`
				}
				if err == nil && code == 200 {
					err = json.Unmarshal(body, &env)
				}
				if err != nil || code != 200 || env.Data.Token == "" {
					firstErr.CompareAndSwap(nil, fmt.Errorf("cannot log in %s%d: HTTP %d %v %s", prefix, i, code, err, body))
					return
				}
				out[i] = env.Data.Token
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return nil, err
	}
	return out, ctx.Err()
}

func reserveInto(req *fasthttp.Request, sale, token, key string) {
	req.Header.SetMethod("POST")
	req.SetRequestURI("/api/v1/flash-sales/" + sale + "/reservations")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.SetContentType("application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	req.SetBodyString(`{"quantity":1}`)
}

func reserve(client *fasthttp.HostClient, sale, token, key string) (int, []byte, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	reserveInto(req, sale, token, key)
	req.SetHost(client.Addr)
	err := client.DoTimeout(req, resp, overloadTimeout)
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), err
}

func post(client *fasthttp.HostClient, path, token, key string, body []byte) (int, []byte, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod("POST")
	req.SetRequestURI(path)
	req.SetHost(client.Addr)
	req.Header.SetContentType("application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	req.SetBody(body)
	err := client.DoTimeout(req, resp, overloadTimeout)
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), err
}

// GeneratorKeptUp reports whether the generator sent at most a tenth of
// the storm's requests over 10 ms after their intended time: only then
// does the p99 from the intended time say something about the server.
func (o *Overload) GeneratorKeptUp() bool { return o.Late*10 <= o.Sent }

// plural is "1 core", "2 cores".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// quantile is the q-th percentile of d (sorted in place); 0 if empty.
func quantile(d []time.Duration, q int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[(len(d)*q-1)/100]
}

// markdown is the overload section of BENCHMARKS.md.
func (o *Overload) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "`surge serve` (pebble, its own process, pinned to %s with taskset, as on a machine of that size, so that the generator can offer five times its capacity; GOMAXPROCS %d, its own choice; risk rate limits off) takes reserves on %d flash sales (per-user limit 1, an Idempotency-Key each, %d users logged in) at 5x the capacity measured just before, for %v, with %d pays of held reservations spread over the storm. ",
		plural(o.ServerCores, "core"), o.ServerProcs, o.Sales, o.Users, o.Storm.Round(time.Millisecond), o.Pays)
	b.WriteString("Then the sales end and their holds run out; RSS is read once every hold is released, then each second until it is within 1.5x of before (no GOMEMLIMIT: the sweeper returns freed memory to the OS itself, at most once a minute).\n\n")
	b.WriteString("| figure | measured | next to | target | met |\n|---|---:|---:|---:|---|\n")
	fmt.Fprintf(&b, "| pays shed | %d of %d (%.1f%%) | %d paid, %d failed otherwise | 0 | %s |\n", o.PaysShed, o.Pays, 100*o.PaysShedShare(), o.PaysOK, o.PaysFailed, yesNo(o.PaysShed == 0))
	if o.GeneratorKeptUp() {
		fmt.Fprintf(&b, "| admitted reserve p99, from the intended send time | %s | unloaded p99 %s (p50 %s) | ≤ 50 ms | %s |\n", ms(o.AdmittedP99), ms(o.UnloadedP99), ms(o.UnloadedP50), yesNo(o.AdmittedP99 <= 50*time.Millisecond))
	} else {
		fmt.Fprintf(&b, "| admitted reserve p99, from the intended send time | %s | unloaded p99 %s (p50 %s) | — (the generator fell behind its schedule: below) | — |\n", ms(o.AdmittedP99), ms(o.UnloadedP99), ms(o.UnloadedP50))
	}
	fmt.Fprintf(&b, "| admitted reserve p99, from the actual send | %s | unloaded p99 %s | ≤ 50 ms | %s |\n", ms(o.AdmittedSentP99), ms(o.UnloadedP99), yesNo(o.AdmittedSentP99 <= 50*time.Millisecond))
	fmt.Fprintf(&b, "| RSS after the sales (%v after the holds ended) | %d MiB | before %d MiB, peak %d MiB | ≤ 1.5x before | %s |\n",
		o.AfterWait.Round(time.Second), o.RSSAfterKiB>>10, o.RSSBeforeKiB>>10, o.RSSPeakKiB>>10, yesNo(o.RSSAfterRatio() > 0 && o.RSSAfterRatio() <= 1.5))
	b.WriteString("\n")
	fmt.Fprintf(&b, "- Capacity %.0f reserves/s (closed loop, %d connections, 2 s); offered %.0f/s; sent %d (%d over 10 ms late: the generator's own lag, charged to the latency from the intended time).\n", o.Capacity, overloadConns, o.Offered, o.Sent, o.Late)
	if !o.GeneratorKeptUp() {
		fmt.Fprintf(&b, "- The generator fell behind: over a tenth of the sends left more than 10 ms after their time. Its %d workers each wait for their answer, and five times this capacity is more than these cores can send even to a bare fasthttp server, so the p99 from the intended time measures the generator's backlog and is not judged; the p99 from the actual send is.\n", overloadConns)
	}
	fmt.Fprintf(&b, "- Reserves: %d admitted (p50 %s), %d shed with 503/50300 and Retry-After, %d refused (sold out, limit, sale gate), %d errors.\n", o.Admitted, ms(o.AdmittedP50), o.Shed, o.Refused, o.Errors)
	fmt.Fprintf(&b, "- The server's own p99 (its /metrics histograms): %s from routing to the answer, sheds included; %s in the engine and the store, admitted only. The rest of the %s from the send is socket queues, the scheduler and the generator on the same cores. A ready goroutine waited %s on average for one of the %d Ps (`/sched/latencies`); adaptive writes limit lowest %d of %d.\n",
		ms(o.ServerReserveP99), ms(o.EngineReserveP99), ms(o.AdmittedSentP99), ms(o.SchedWaitMean), o.ServerProcs, o.LimitLowest, o.LimitMax)
	fmt.Fprintf(&b, "- Go heap in use: %d MiB before, %d MiB after; heap freed but not yet returned to the OS: %d MiB before, %d MiB after. Goroutines: %d before, %d at peak, %d after.\n\n", o.HeapInuseBeforeKiB>>10, o.HeapInuseAfterKiB>>10, o.HeapIdleBeforeKiB>>10, o.HeapIdleAfterKiB>>10, o.GoroutinesBefore, o.GoroutinesPeak, o.GoroutinesAfter)
	return b.String()
}

// histogram is a Prometheus histogram's cumulative buckets read from
// /metrics: upper bounds (seconds, ascending, +Inf last) and counts.
type histogram struct {
	bounds []float64
	cum    []float64
}

// readHistogram reads the buckets of metric with route="route" from
// /metrics (empty if it cannot).
func readHistogram(base, metric, route string) histogram {
	var req fasthttp.Request
	var resp fasthttp.Response
	req.SetRequestURI(base + "/metrics")
	if err := fasthttp.DoTimeout(&req, &resp, 5*time.Second); err != nil {
		return histogram{}
	}
	prefix := []byte(metric + `_bucket{route="` + route + `",le="`)
	var h histogram
	for _, line := range bytes.Split(resp.Body(), []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		le, val, ok := bytes.Cut(rest, []byte(`"} `))
		if !ok {
			continue
		}
		b, err1 := strconv.ParseFloat(string(le), 64)
		v, err2 := strconv.ParseFloat(string(val), 64)
		if err1 != nil || err2 != nil {
			continue
		}
		h.bounds, h.cum = append(h.bounds, b), append(h.cum, v)
	}
	return h
}

// quantileSince is the q-quantile (0..1) of the observations made between
// before and h, by linear interpolation inside a bucket (as Prometheus'
// histogram_quantile); 0 when there are none.
func (h histogram) quantileSince(before histogram, q float64) time.Duration {
	if len(h.cum) == 0 {
		return 0
	}
	delta := make([]float64, len(h.cum))
	for i := range h.cum {
		delta[i] = h.cum[i]
		if len(before.cum) == len(h.cum) {
			delta[i] -= before.cum[i]
		}
	}
	total := delta[len(delta)-1]
	if total <= 0 {
		return 0
	}
	rank := q * total
	lo, prev := 0.0, 0.0
	for i, c := range delta {
		if c >= rank {
			hi := h.bounds[i]
			if math.IsInf(hi, 1) {
				return time.Duration(lo * float64(time.Second))
			}
			frac := 0.0
			if c > prev {
				frac = (rank - prev) / (c - prev)
			}
			return time.Duration((lo + (hi-lo)*frac) * float64(time.Second))
		}
		lo, prev = h.bounds[i], c
	}
	return 0
}
