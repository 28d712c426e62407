package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/redisinv"
)

// ConnsDefault is the closed-loop HTTP connections of a run. It is the
// concurrency of the backend tables' targets (256 callers) and of the
// open-model runs: a flash sale is thousands of shoppers at once, and a
// synced reserve's throughput is concurrency over commit latency (Little's
// law), so with few connections the HTTP figure measures the disk's fsync
// latency rather than what a request costs. The floor is measured at the
// same count; `--conns 64` gives the earlier setting.
const ConnsDefault = 256

// Options configures Run. The zero value means the defaults.
type Options struct {
	// Duration of each measurement. Default 5s.
	Duration time.Duration
	// Conns is the closed-loop HTTP connections, the same for every HTTP
	// scenario and its floor. Default 256 (ConnsDefault).
	Conns int
	// Callers are the concurrencies of the backend scenarios. Default
	// 1, 16, 256.
	Callers []int
	// Only limits the run to some groups (Groups; "packages" and "wrk"
	// are the caller's to run, Run skips them). Default all. An unknown
	// group is an error (CheckGroups).
	Only []string
	// Log receives progress lines. Default io.Discard.
	Log io.Writer
}

func (o Options) withDefaults() Options {
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Conns <= 0 {
		o.Conns = ConnsDefault
	}
	if len(o.Callers) == 0 {
		o.Callers = []int{1, 16, 256}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o
}

// GroupsInProcess are the groups Run measures, and `surge bench` runs by
// default; Groups adds the ones its caller runs: the packages' testing.B
// benchmarks, the external wrk measurement, the overload scenario
// (RunOverload) and the fairness scenario (RunFairness); `surge bench`
// also runs the last two by default.
var (
	GroupsInProcess = []string{"http", "pebble", "redis", "latency", "buckets"}
	Groups          = append(slices.Clone(GroupsInProcess), "packages", "wrk", "overload", "fairness")
)

// CheckGroups refuses a group that is not one of Groups: a misspelt
// --only would otherwise run nothing and print a page of "not run".
func CheckGroups(groups []string) error {
	for _, g := range groups {
		if !slices.Contains(Groups, g) {
			return fmt.Errorf("bench: unknown group %q (the groups are %s)", g, strings.Join(Groups, ", "))
		}
	}
	return nil
}

func (o Options) want(group string) bool {
	if len(o.Only) == 0 {
		return true
	}
	for _, g := range o.Only {
		if g == group {
			return true
		}
	}
	return false
}

// Row is one scenario: Surge's figure next to its floor, both in Unit.
type Row struct {
	// Key names the scenario for the summary table ("http/store-page");
	// it stays the same from run to run. See summaryTargets.
	Key      string
	Scenario string
	Surge    float64
	Floor    float64
	Unit     string
	// Median, when above 0, is the ratio: the median of the per-round
	// ratios of a comparison in alternating rounds (AlternateRounds),
	// Surge and Floor being the sides' throughput over all rounds.
	Median float64
	// Sent and Refused count the Surge side's requests and those not
	// answered with success (shed by admission control, refused, failed)
	// in a closed-loop HTTP scenario; 0 where not counted. Surge counts
	// successes only, so a scenario whose answers are mostly refusals
	// measures the refusing.
	Sent, Refused int64
}

// Ratio is Surge / Floor (0 when the floor is missing), or Median when set.
func (r Row) Ratio() float64 {
	if r.Floor <= 0 {
		return 0
	}
	if r.Median > 0 {
		return r.Median
	}
	return r.Surge / r.Floor
}

// Table is a group of rows that share a kind of floor.
type Table struct {
	Title string
	Floor string
	Rows  []Row
}

// LatencyRow is an open-model run at a share of a measured maximum.
type LatencyRow struct {
	Scenario string
	LoadPct  int
	MaxRate  float64
	Latency
}

// Results is one `surge bench` run: everything BENCHMARKS.md shows.
// Groups that did not run are empty, and the page says "not run".
type Results struct {
	Started time.Time
	// Command and Commit head the page; the caller fills them.
	Command string
	Commit  string
	Machine MachineInfo
	Tables  []Table
	Latency []LatencyRow
	// Packages are the testing.B benchmarks (RunPackages); nil if not run.
	Packages []PackageRun
	// External is the wrk measurement (RunExternal); nil if not run.
	External *External
	// ExternalBefore, when set, is the same wrk measurement of an earlier
	// build (surge bench --wrk-before), run in the same session, for the
	// page's before-and-after table.
	ExternalBefore *External
	// Overload is the overload scenario (RunOverload); nil if not run.
	Overload *Overload
	// Fairness is the fairness scenario (RunFairness); nil if not run.
	Fairness *Fairness
}

// Run measures every scenario group and its floors in one run.
func Run(ctx context.Context, opts Options) (*Results, error) {
	if err := CheckGroups(opts.Only); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	res := &Results{Started: time.Now().UTC(), Machine: Machine()}
	dir, err := os.MkdirTemp("", "surge-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	logf := func(format string, args ...any) { fmt.Fprintf(opts.Log, "bench: "+format+"\n", args...) }

	var pageRate, pebbleReserveRate float64
	if opts.want("http") || opts.want("latency") {
		t, pr, rr, err := runHTTP(ctx, dir, opts, logf)
		if err != nil {
			return nil, err
		}
		pageRate, pebbleReserveRate = pr, rr
		if opts.want("http") {
			res.Tables = append(res.Tables, t)
		}
	}
	if opts.want("pebble") {
		t, err := runPebble(ctx, dir, opts, logf)
		if err != nil {
			return nil, err
		}
		res.Tables = append(res.Tables, t)
	}
	if opts.want("redis") {
		t, err := runRedis(ctx, dir, opts, logf)
		if err != nil {
			return nil, err
		}
		res.Tables = append(res.Tables, t)
	}
	if opts.want("buckets") {
		t, err := runBuckets(ctx, dir, opts, logf)
		if err != nil {
			return nil, err
		}
		res.Tables = append(res.Tables, t)
	}
	if opts.want("latency") {
		rows, err := runLatency(ctx, dir, opts, pageRate, pebbleReserveRate, logf)
		if err != nil {
			return nil, err
		}
		res.Latency = rows
	}
	return res, nil
}

func getOK(resp *fasthttp.Response) bool  { return resp.StatusCode() == 200 }
func postOK(resp *fasthttp.Response) bool { return resp.StatusCode() == 200 }

// runHTTP measures the store and guide pages and the flash reserve on each
// backend through the whole gateway, each next to a bare fasthttp handler
// returning a body of the same size. It returns the table and the measured
// maxima used by the latency runs.
func runHTTP(ctx context.Context, dir string, opts Options, logf func(string, ...any)) (Table, float64, float64, error) {
	t := Table{Title: "HTTP through the whole gateway (closed loop, " + strconv.Itoa(opts.Conns) + " connections, " + opts.Duration.String() + " each)", Floor: "bare fasthttp handler returning a fixed JSON body of the same size"}
	measure := func(key, name string, s *Surge, build Request, ok Check) (float64, error) {
		body, err := sample(s.Addr, build)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		floor, err := StartFloorServer("127.0.0.1:0", body)
		if err != nil {
			return 0, err
		}
		defer floor.Close()
		ft, st, err := Alternate(opts.Duration,
			func(d time.Duration) (Throughput, error) {
				return ClosedLoop(ctx, floor.Addr, opts.Conns, d, build, getOK)
			},
			func(d time.Duration) (Throughput, error) { return ClosedLoop(ctx, s.Addr, opts.Conns, d, build, ok) })
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		row := Row{Key: key, Scenario: name + fmt.Sprintf(" (%d B body)", len(body)), Surge: st.PerSecond(), Floor: ft.PerSecond(), Unit: "req/s",
			Sent: st.Requests, Refused: st.Requests - st.Successes}
		logf("%-40s %10.0f req/s   floor %10.0f req/s   ratio %.2f   (Surge refused %d of %d)", name, row.Surge, row.Floor, row.Ratio(), row.Refused, row.Sent)
		t.Rows = append(t.Rows, row)
		return row.Surge, nil
	}

	// Memory backend: pages and reserves.
	mem, err := StartSurge(ctx, engine.Options{Store: inventory.NewMemory(inventory.Options{})})
	if err != nil {
		return t, 0, 0, err
	}
	defer mem.Close()
	if err := setupBenchSale(ctx, mem.Engine, "bench-fs"); err != nil {
		return t, 0, 0, err
	}
	pageRate, err := measure("http/store-page", "store page", mem, pageRequest(""), getOK)
	if err != nil {
		return t, 0, 0, err
	}
	if _, err := measure("http/guide-page", "guide page", mem, pageRequest("bg1"), getOK); err != nil {
		return t, 0, 0, err
	}
	memTokens, err := tokens(mem.Addr, opts.Conns, "mb")
	if err != nil {
		return t, 0, 0, err
	}
	if _, err := measure("http/reserve-memory", "flash reserve, memory backend", mem, reserveRequest(memTokens), postOK); err != nil {
		return t, 0, 0, err
	}
	if err := runRiskHTTP(ctx, opts, &t, logf); err != nil {
		return t, 0, 0, fmt.Errorf("risk signals: %w", err)
	}

	// Pebble backend: durable reserves.
	ps, err := inventory.OpenPebble(filepath.Join(dir, "http-inventory"), inventory.PebbleOptions{})
	if err != nil {
		return t, 0, 0, err
	}
	defer ps.Close()
	peb, err := StartSurge(ctx, engine.Options{Store: ps, Dir: filepath.Join(dir, "http-engine")})
	if err != nil {
		return t, 0, 0, err
	}
	defer peb.Close()
	if err := setupBenchSale(ctx, peb.Engine, "bench-fs"); err != nil {
		return t, 0, 0, err
	}
	pebTokens, err := tokens(peb.Addr, opts.Conns, "pb")
	if err != nil {
		return t, 0, 0, err
	}
	reserveRate, err := measure("http/reserve-pebble", "flash reserve, pebble backend (synced)", peb, reserveRequest(pebTokens), postOK)
	if err != nil {
		return t, 0, 0, err
	}

	// Redis backend (appendfsync always), records in the same server.
	redisDir := filepath.Join(dir, "http-redis")
	if err := os.MkdirAll(redisDir, 0o700); err != nil {
		return t, 0, 0, err
	}
	srv, err := redistest.Launch(redisDir)
	if err != nil {
		return t, 0, 0, fmt.Errorf("bench: cannot start redis-server: %w", err)
	}
	defer srv.Stop()
	rs, err := redisinv.Open(ctx, redisinv.Options{Addr: srv.Addr})
	if err != nil {
		return t, 0, 0, err
	}
	defer rs.Close()
	red, err := StartSurge(ctx, engine.Options{Store: rs, RedisAddr: srv.Addr})
	if err != nil {
		return t, 0, 0, err
	}
	defer red.Close()
	if err := setupBenchSale(ctx, red.Engine, "bench-fs"); err != nil {
		return t, 0, 0, err
	}
	redTokens, err := tokens(red.Addr, opts.Conns, "rb")
	if err != nil {
		return t, 0, 0, err
	}
	if _, err := measure("http/reserve-redis", "flash reserve, redis backend (appendfsync always)", red, reserveRequest(redTokens), postOK); err != nil {
		return t, 0, 0, err
	}
	// The same reserve under an Idempotency-Key (a new key per request),
	// next to the same without one, alternating on the same server.
	plain, keyed, err := Alternate(opts.Duration,
		func(d time.Duration) (Throughput, error) {
			return ClosedLoop(ctx, red.Addr, opts.Conns, d, reserveRequest(redTokens), postOK)
		},
		func(d time.Duration) (Throughput, error) {
			return ClosedLoop(ctx, red.Addr, opts.Conns, d, keyedReserveRequest(redTokens), postOK)
		})
	if err != nil {
		return t, 0, 0, fmt.Errorf("keyed reserve: %w", err)
	}
	row := Row{Key: "http/reserve-redis-keyed", Scenario: "flash reserve with an Idempotency-Key, redis backend, vs the same without a key",
		Surge: keyed.PerSecond(), Floor: plain.PerSecond(), Unit: "req/s"}
	logf("%-40s %10.0f req/s   floor %10.0f req/s   ratio %.2f", "keyed reserve, redis", row.Surge, row.Floor, row.Ratio())
	t.Rows = append(t.Rows, row)
	return t, pageRate, reserveRate, nil
}

// keyedReserveRequest is reserveRequest with a new Idempotency-Key on
// every request (a counter: a closed loop restarts its seq per segment).
func keyedReserveRequest(tokens []string) Request {
	plain := reserveRequest(tokens)
	run := strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
	var n atomic.Int64
	return func(w, seq int, req *fasthttp.Request) {
		plain(w, seq, req)
		req.Header.Set("Idempotency-Key", run+strconv.FormatInt(n.Add(1), 36))
	}
}

func pageRequest(guide string) Request {
	uri := "/api/v1/stores/b1/page"
	if guide != "" {
		uri += "?guide=" + guide
	}
	return func(_, _ int, req *fasthttp.Request) {
		req.Header.SetMethod("GET")
		req.SetRequestURI(uri)
	}
}

func reserveRequest(tokens []string) Request {
	body := []byte(`{"quantity":1}`)
	return func(w, _ int, req *fasthttp.Request) {
		req.Header.SetMethod("POST")
		req.SetRequestURI("/api/v1/flash-sales/bench-fs/reservations")
		req.Header.Set("Authorization", "Bearer "+tokens[w%len(tokens)])
		req.Header.SetContentType("application/json")
		req.SetBody(body)
	}
}

// sample makes one request and returns its body, to size the floor.
func sample(addr string, build Request) ([]byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	build(0, 0, req)
	req.SetRequestURI("http://" + addr + string(req.RequestURI()))
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
		return nil, err
	}
	if resp.StatusCode() != 200 {
		return nil, fmt.Errorf("sample request: HTTP %d: %s", resp.StatusCode(), resp.Body())
	}
	return append([]byte(nil), resp.Body()...), nil
}

func tokens(addr string, n int, prefix string) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		body, _ := json.Marshal(map[string]string{"code": fmt.Sprintf("%s%04d", prefix, i)})
		resp, err := http.Post("http://"+addr+"/api/v1/session", "application/json", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		var env struct {
			Code int `json:"code"`
			Data struct {
				Token string `json:"token"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&env)
		resp.Body.Close()
		if err != nil || env.Code != 0 {
			return nil, fmt.Errorf("bench: login failed: %v (code %d)", err, env.Code)
		}
		out[i] = env.Data.Token
	}
	return out, nil
}

// reserveBytesFloor is the size of the raw synced batch of the Pebble floor:
// about what one durable single-line reservation writes (record + counters).
const reserveBytesFloor = 256

func runPebble(ctx context.Context, dir string, opts Options, logf func(string, ...any)) (Table, error) {
	t := Table{Title: "Pebble: durable reservations (synced WAL, group commit), " + opts.Duration.String() + " each", Floor: fmt.Sprintf("raw Pebble batch commits with Sync of %d bytes, same disk, same concurrency", reserveBytesFloor)}
	for _, callers := range opts.Callers {
		floorDB, err := pebble.Open(filepath.Join(dir, fmt.Sprintf("floor-%d", callers)), &pebble.Options{Logger: quietLogger{}})
		if err != nil {
			return t, err
		}
		st, err := inventory.OpenPebble(filepath.Join(dir, fmt.Sprintf("pebble-%d", callers)), inventory.PebbleOptions{})
		if err != nil {
			floorDB.Close()
			return t, err
		}
		if err := st.CreatePool(ctx, "b1:fs:bench", 1<<40); err != nil {
			st.Close()
			floorDB.Close()
			return t, err
		}
		floorOp, reserve := PebbleFloor(floorDB, reserveBytesFloor), reserveOp(st)
		ft, surge, err := Alternate(opts.Duration,
			func(d time.Duration) (Throughput, error) { return Parallel(ctx, callers, d, floorOp) },
			func(d time.Duration) (Throughput, error) { return Parallel(ctx, callers, d, reserve) })
		st.Close()
		floorDB.Close()
		if err != nil {
			return t, fmt.Errorf("pebble reserve: %w", err)
		}
		row := Row{Key: fmt.Sprintf("pebble/reserve-%d", callers), Scenario: fmt.Sprintf("reserve, %d callers", callers), Surge: surge.PerSecond(), Floor: ft.PerSecond(), Unit: "ops/s"}
		logf("pebble %-30s %10.0f ops/s   floor %10.0f ops/s   ratio %.2f", row.Scenario, row.Surge, row.Floor, row.Ratio())
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

func reserveOp(st inventory.Store) func(caller, seq int) error {
	return func(caller, seq int) error {
		_, err := st.Reserve(context.Background(), inventory.ReserveRequest{
			ID:    "b1:" + strconv.Itoa(caller) + "-" + strconv.Itoa(seq),
			User:  "u" + strconv.Itoa(caller),
			Lines: []inventory.Line{{Pool: "b1:fs:bench", Quantity: 1}},
			TTL:   time.Hour,
		})
		return err
	}
}

func runRedis(ctx context.Context, dir string, opts Options, logf func(string, ...any)) (Table, error) {
	t := Table{Title: "Redis: reservations through the Lua scripts (appendfsync always), " + opts.Duration.String() + " each", Floor: "raw EVALSHA through rueidis, same server, same concurrency: `return 1` (the issue's floor; it writes nothing, so it pays no AOF fsync) and a one-key INCR script (pays the same fsync as any write)"}
	redisDir := filepath.Join(dir, "redis")
	if err := os.MkdirAll(redisDir, 0o700); err != nil {
		return t, err
	}
	srv, err := redistest.Launch(redisDir)
	if err != nil {
		return t, fmt.Errorf("bench: cannot start redis-server: %w", err)
	}
	defer srv.Stop()
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}})
	if err != nil {
		return t, err
	}
	defer client.Close()
	for _, callers := range opts.Callers {
		st, err := redisinv.Open(ctx, redisinv.Options{Addr: srv.Addr, Prefix: fmt.Sprintf("bench%d", callers)})
		if err != nil {
			return t, err
		}
		if err := st.CreatePool(ctx, "b1:fs:bench", 1<<40); err != nil {
			st.Close()
			return t, err
		}
		floorOp, writeOp, reserve := RedisFloor(client), RedisWriteFloor(client), reserveOp(st)
		ft, surge, err := Alternate(opts.Duration,
			func(d time.Duration) (Throughput, error) { return Parallel(ctx, callers, d, floorOp) },
			func(d time.Duration) (Throughput, error) { return Parallel(ctx, callers, d, reserve) })
		if err != nil {
			st.Close()
			return t, fmt.Errorf("redis reserve: %w", err)
		}
		wt, surge2, err := Alternate(opts.Duration,
			func(d time.Duration) (Throughput, error) { return Parallel(ctx, callers, d, writeOp) },
			func(d time.Duration) (Throughput, error) { return Parallel(ctx, callers, d, reserve) })
		st.Close()
		if err != nil {
			return t, fmt.Errorf("redis reserve: %w", err)
		}
		row := Row{Key: fmt.Sprintf("redis/reserve-%d", callers), Scenario: fmt.Sprintf("reserve, %d callers, vs `return 1`", callers), Surge: surge.PerSecond(), Floor: ft.PerSecond(), Unit: "ops/s"}
		logf("redis %-31s %10.0f ops/s   floor %10.0f ops/s   ratio %.2f", row.Scenario, row.Surge, row.Floor, row.Ratio())
		t.Rows = append(t.Rows, row)
		wrow := Row{Key: fmt.Sprintf("redis/reserve-%d-incr", callers), Scenario: fmt.Sprintf("reserve, %d callers, vs one-key INCR script", callers), Surge: surge2.PerSecond(), Floor: wt.PerSecond(), Unit: "ops/s"}
		logf("redis %-31s %10.0f ops/s   floor %10.0f ops/s   ratio %.2f", wrow.Scenario, wrow.Surge, wrow.Floor, wrow.Ratio())
		t.Rows = append(t.Rows, wrow)
	}
	return t, nil
}

// runLatency runs open-model loads at 50% and 90% of the maxima measured
// by runHTTP in this same run.
func runLatency(ctx context.Context, dir string, opts Options, pageRate, reserveRate float64, logf func(string, ...any)) ([]LatencyRow, error) {
	var rows []LatencyRow
	mem, err := StartSurge(ctx, engine.Options{Store: inventory.NewMemory(inventory.Options{})})
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	if err := setupBenchSale(ctx, mem.Engine, "bench-fs"); err != nil {
		return nil, err
	}
	ps, err := inventory.OpenPebble(filepath.Join(dir, "lat-inventory"), inventory.PebbleOptions{})
	if err != nil {
		return nil, err
	}
	defer ps.Close()
	peb, err := StartSurge(ctx, engine.Options{Store: ps, Dir: filepath.Join(dir, "lat-engine")})
	if err != nil {
		return nil, err
	}
	defer peb.Close()
	if err := setupBenchSale(ctx, peb.Engine, "bench-fs"); err != nil {
		return nil, err
	}
	pebTokens, err := tokens(peb.Addr, openLoopWorkersMax, "lb")
	if err != nil {
		return nil, err
	}
	type scenario struct {
		name    string
		addr    string
		maxRate float64
		build   Request
	}
	scenarios := []scenario{
		{"store page (memory)", mem.Addr, pageRate, pageRequest("")},
		{"flash reserve (pebble, synced)", peb.Addr, reserveRate, reserveRequest(pebTokens)},
	}
	for _, s := range scenarios {
		if s.maxRate <= 0 {
			continue
		}
		for _, pct := range []int{50, 90} {
			lat, err := OpenLoop(ctx, s.addr, s.maxRate*float64(pct)/100, opts.Duration, s.build, postOK)
			if err != nil {
				return nil, err
			}
			logf("latency %-30s at %d%% (%.0f/s): p50 %v p99 %v p99.9 %v max %v late %d", s.name, pct, lat.Rate, lat.P50, lat.P99, lat.P999, lat.Max, lat.Late)
			rows = append(rows, LatencyRow{Scenario: s.name, LoadPct: pct, MaxRate: s.maxRate, Latency: lat})
		}
	}
	return rows, nil
}

// quietLogger keeps Pebble's informational lines out of the bench output.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
