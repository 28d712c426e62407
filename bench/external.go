package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/surge-retail/surge/internal/cputime"
	"github.com/surge-retail/surge/internal/redistest"
)

// External measurement: wrk against `surge serve` in its own process,
// alternating with a bare fasthttp floor server in its own process. Only
// loopback addresses; Redis on a free port, never 6379.

const (
	// externalConnsDefault and externalThreads are wrk's -c and -t.
	externalConnsDefault = 128
	externalThreads      = 1
	// externalUsersDefault is how many users log in; requests rotate
	// through their tokens (wrk has no per-connection hook, so the token
	// changes per request).
	externalUsersDefault = 1000
	externalUsersMax     = 100_000
	// externalSliceDefault is one wrk run; wrk takes whole seconds.
	externalSliceDefault = 3 * time.Second
	// The sale: far more units than a run can take, and a per-user limit
	// (the engine's maximum) that users × limit keeps out of reach, so
	// every reserve of a run succeeds and the limit path is exercised.
	externalSaleID         = "wrk-fs"
	externalSaleQuantity   = 800_000_000
	externalPerUserLimit   = 10_000
	externalHoldSeconds    = 3600
	externalStartTimeout   = 30 * time.Second
	externalRequestTimeout = 10 * time.Second
	externalAdminToken     = "wrk-admin-token-0123456789abcdef"
)

// externalBackends are the backends the flash reserve can be measured on,
// in the default order.
var externalBackends = []string{"memory", "pebble", "redis"}

// ExternalOptions configures RunExternal.
type ExternalOptions struct {
	// Surge is the binary whose `serve` is measured. Required.
	Surge string
	// Label names that binary on the page (e.g. its commit). Default Surge.
	Label string
	// FloorCommand starts the floor server; RunExternal appends
	// "--addr ADDR --body FILE". Required (cmd/surge passes its own
	// `bench floor-server`).
	FloorCommand []string
	// Wrk is the wrk binary. Default "wrk" on PATH.
	Wrk string
	// Slice is one wrk run (whole seconds); each side of a scenario gets
	// alternateSegments slices. Default 3s.
	Slice time.Duration
	// Conns is wrk's connections. Default 128.
	Conns int
	// Users is how many users log in. Default 1000.
	Users int
	// Backends to measure the flash reserve on. Default memory, pebble,
	// redis. The guide page is measured on the first.
	Backends []string
	// Log receives progress lines. Default io.Discard.
	Log io.Writer
}

// External is one wrk run of every scenario.
type External struct {
	Started time.Time
	Machine MachineInfo
	Label   string
	Wrk     string
	Conns   int
	Slice   time.Duration
	Users   int
	Rows    []ExternalRow
}

// ExternalRow is one scenario: Surge's successful requests per second next
// to the floor's, with what wrk counted.
type ExternalRow struct {
	Row
	Backend      string
	SurgeStats   WrkStats
	FloorStats   WrkStats
	BodyBytesLen int
}

// WrkStats adds up the wrk runs of one side.
type WrkStats struct {
	Requests     int64 // completed responses
	Non2xx       int64 // responses with a status outside 2xx/3xx
	SocketErrors int64 // connect, read, write errors and timeouts
	Elapsed      time.Duration
	// CPU time used during the runs (zero where it cannot be read: /proc
	// is Linux's): by the measured server (Surge or the floor server), by
	// redis-server (Surge on the redis backend only), by wrk, and by the
	// whole machine (MachineBusy out of MachineAll, all CPUs).
	ServerCPU, RedisCPU, WrkCPU time.Duration
	MachineBusy, MachineAll     time.Duration
}

// PerSecond is successful (2xx/3xx) responses per second.
func (w WrkStats) PerSecond() float64 {
	if w.Elapsed <= 0 {
		return 0
	}
	return float64(w.Requests-w.Non2xx) / w.Elapsed.Seconds()
}

// PerRequest is d per successful response, in µs (0 if none).
func (w WrkStats) PerRequest(d time.Duration) float64 {
	ok := w.Requests - w.Non2xx
	if ok <= 0 {
		return 0
	}
	return float64(d) / float64(time.Microsecond) / float64(ok)
}

// HasCPU reports whether the runs' CPU times were read.
func (w WrkStats) HasCPU() bool { return w.MachineAll > 0 && w.ServerCPU > 0 && w.WrkCPU > 0 }

// Busy is the share of the machine's CPU time that was busy (0..1).
func (w WrkStats) Busy() float64 {
	if w.MachineAll <= 0 {
		return 0
	}
	return float64(w.MachineBusy) / float64(w.MachineAll)
}

func (w WrkStats) add(o WrkStats) WrkStats {
	return WrkStats{Requests: w.Requests + o.Requests, Non2xx: w.Non2xx + o.Non2xx, SocketErrors: w.SocketErrors + o.SocketErrors, Elapsed: w.Elapsed + o.Elapsed,
		ServerCPU: w.ServerCPU + o.ServerCPU, RedisCPU: w.RedisCPU + o.RedisCPU, WrkCPU: w.WrkCPU + o.WrkCPU,
		MachineBusy: w.MachineBusy + o.MachineBusy, MachineAll: w.MachineAll + o.MachineAll}
}

func (o ExternalOptions) withDefaults() (ExternalOptions, error) {
	if o.Surge == "" || len(o.FloorCommand) == 0 {
		return o, errors.New("bench: external run needs a surge binary and a floor command")
	}
	if o.Label == "" {
		o.Label = o.Surge
	}
	if o.Wrk == "" {
		o.Wrk = "wrk"
	}
	if o.Slice <= 0 {
		o.Slice = externalSliceDefault
	}
	o.Slice = o.Slice.Round(time.Second)
	if o.Slice < time.Second {
		o.Slice = time.Second
	}
	if o.Conns <= 0 {
		o.Conns = externalConnsDefault
	}
	if o.Users <= 0 {
		o.Users = externalUsersDefault
	}
	if o.Users > externalUsersMax || o.Conns > 4096 {
		return o, fmt.Errorf("bench: external run: users %d (max %d) or conns %d (max 4096) out of range", o.Users, externalUsersMax, o.Conns)
	}
	if len(o.Backends) == 0 {
		o.Backends = slices.Clone(externalBackends)
	}
	for i, b := range o.Backends {
		if !slices.Contains(externalBackends, b) || slices.Contains(o.Backends[:i], b) {
			return o, fmt.Errorf("bench: external run: backend %q is unknown or repeated (memory, pebble, redis)", b)
		}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o, nil
}

// RunExternal measures the guide page and the flash reserve of o.Surge
// with wrk, each next to the floor server in the same run.
func RunExternal(ctx context.Context, o ExternalOptions) (*External, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	wrkPath, err := exec.LookPath(o.Wrk)
	if err != nil {
		return nil, fmt.Errorf("bench: cannot find wrk: %w", err)
	}
	dir, err := os.MkdirTemp("", "surge-wrk-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	logf := func(format string, args ...any) { fmt.Fprintf(o.Log, "wrk: "+format+"\n", args...) }
	ext := &External{Started: time.Now().UTC(), Machine: Machine(), Label: o.Label, Conns: o.Conns, Slice: o.Slice, Users: o.Users}
	ext.Wrk = commandOutput(wrkPath, "--version")
	if i := strings.Index(ext.Wrk, " Copyright"); i > 0 {
		ext.Wrk = ext.Wrk[:i]
	}
	ext.Machine.Wrk = ext.Wrk

	for i, backend := range o.Backends {
		rows, err := externalBackend(ctx, o, wrkPath, filepath.Join(dir, backend), backend, i == 0, logf)
		if err != nil {
			return nil, fmt.Errorf("bench: external run, %s backend: %w", backend, err)
		}
		ext.Rows = append(ext.Rows, rows...)
	}
	return ext, nil
}

func externalBackend(ctx context.Context, o ExternalOptions, wrkPath, dir, backend string, withPage bool, logf func(string, ...any)) ([]ExternalRow, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	args := []string{"serve", "--backend", backend, "--data", filepath.Join(dir, "data"), "--log-level", "warn"}
	redisPID := 0
	if backend == "redis" {
		srv, err := redistest.Launch(dir)
		if err != nil {
			return nil, fmt.Errorf("cannot start redis-server: %w", err)
		}
		defer srv.Stop()
		redisPID = srv.PID()
		args = append(args, "--redis", srv.Addr)
	}
	surge, err := startProcess(ctx, o.Surge, args, filepath.Join(dir, "surge.log"), "--addr", surgeEnv())
	if err != nil {
		return nil, err
	}
	defer surge.stop()
	base := "http://" + surge.addr
	if err := setupExternalSale(base); err != nil {
		return nil, err
	}
	tokens := make([]string, o.Users)
	for i := range tokens {
		if tokens[i], err = login(base, "user"+strconv.Itoa(i)); err != nil {
			return nil, err
		}
	}

	type scenario struct {
		key, name, method, path string
		lua                     string
	}
	var scenarios []scenario
	if withPage {
		scenarios = append(scenarios, scenario{"wrk/guide-page", "guide page", "GET", "/api/v1/stores/b1/page?guide=bg1", wrkPageLua})
	}
	scenarios = append(scenarios, scenario{"wrk/reserve-" + backend, "flash reserve, " + backend + " backend", "POST", "/api/v1/flash-sales/" + externalSaleID + "/reservations", wrkReserveLua(tokens)})

	var rows []ExternalRow
	for _, s := range scenarios {
		body, err := sampleHTTP(base, s.method, s.path, tokens[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		bodyFile := filepath.Join(dir, strings.ReplaceAll(s.key, "/", "-")+".body")
		if err := os.WriteFile(bodyFile, body, 0o600); err != nil {
			return nil, err
		}
		floor, err := startProcess(ctx, o.FloorCommand[0], append(append([]string(nil), o.FloorCommand[1:]...), "--body", bodyFile), filepath.Join(dir, "floor.log"), "--addr", nil)
		if err != nil {
			return nil, fmt.Errorf("floor server: %w", err)
		}
		script := filepath.Join(dir, "script.lua")
		if err := os.WriteFile(script, []byte(s.lua), 0o600); err != nil {
			floor.stop()
			return nil, err
		}
		var fs, ss WrkStats
		for seg := 0; seg < alternateSegments && err == nil; seg++ {
			var f, su WrkStats
			if f, err = runWrk(ctx, wrkPath, o, script, "http://"+floor.addr+s.path, floor.pid(), 0); err != nil {
				err = fmt.Errorf("floor: %w", err)
				break
			}
			if su, err = runWrk(ctx, wrkPath, o, script, base+s.path, surge.pid(), redisPID); err != nil {
				break
			}
			fs, ss = fs.add(f), ss.add(su)
		}
		floor.stop()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		row := ExternalRow{
			Row:     Row{Key: s.key, Scenario: fmt.Sprintf("%s (%d B body)", s.name, len(body)), Surge: ss.PerSecond(), Floor: fs.PerSecond(), Unit: "req/s"},
			Backend: backend, SurgeStats: ss, FloorStats: fs, BodyBytesLen: len(body),
		}
		logf("%-36s %10.0f req/s   floor %10.0f req/s   ratio %.2f   (non-2xx %d, socket errors %d)", s.name, row.Surge, row.Floor, row.Ratio(), ss.Non2xx, ss.SocketErrors)
		rows = append(rows, row)
	}
	return rows, nil
}

// surgeEnv is the environment of the measured server: the parent's minus
// any SURGE_* setting, plus the run's own. The risk buckets are off (every
// wrk connection comes from 127.0.0.1 and would share one per-IP bucket;
// a closed loop exceeds any per-user rate) and the in-flight bounds are
// stated rather than left to defaults that may change.
func surgeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SURGE_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"SURGE_ADMIN_TOKEN="+externalAdminToken,
		"SURGE_RISK_IP_RATE=0",
		"SURGE_RISK_USER_RATE=0",
		// Every wrk request comes from 127.0.0.1 without a device: the
		// devices-per-address signal would refuse all but 30 users.
		"SURGE_RISK_DEVICES_PER_IP=0",
		// wrk sends no page token (the risk signals' cost is measured
		// in process: http/reserve-risk-on-vs-off).
		"SURGE_RISK_PAGE_TOKEN_OFF=true",
		// The bench's sales open a second before they are made; serve's
		// default lottery window would hold the first reserves of a
		// measurement for the draw. The window is measured in the
		// fairness group, not here.
		"SURGE_SALES_LOTTERY_WINDOW=off",
		"SURGE_ADMISSION_READS_MAX=4096",
		"SURGE_ADMISSION_WRITES_MAX=4096",
	)
}

// process is a child process listening on a loopback address.
type process struct {
	cmd  *exec.Cmd
	addr string
	log  string
	done chan struct{}
}

// startProcess starts bin with args plus `addrFlag 127.0.0.1:PORT` on a
// free port and waits until the port answers HTTP. It tries a few ports:
// another process may take a free port between the probe and the start.
func startProcess(ctx context.Context, bin string, args []string, logPath, addrFlag string, env []string) (*process, error) {
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		logf, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, append(append([]string(nil), args...), addrFlag, addr)...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, fmt.Errorf("cannot start %s: %w", bin, err)
		}
		p := &process{cmd: cmd, addr: addr, log: logPath, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
		if last = p.waitReady(ctx); last == nil {
			return p, nil
		}
		p.stop()
	}
	return nil, last
}

func (p *process) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(externalStartTimeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited at start: %s", filepath.Base(p.cmd.Path), tail(p.log))
		default:
		}
		resp, err := client.Get("http://" + p.addr + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer on %s within %v: %s", filepath.Base(p.cmd.Path), p.addr, externalStartTimeout, tail(p.log))
}

// pid is the process's id.
func (p *process) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM (surge drains and closes its stores) and kills the
// process if it has not exited within 30 seconds.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func tail(path string) string {
	data, _ := os.ReadFile(path)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return strings.TrimSpace(string(data))
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cannot find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// setupExternalSale loads the bench catalog and a running flash sale
// through the admin API, as an operator would.
func setupExternalSale(base string) error {
	cat, err := json.Marshal(benchCatalog())
	if err != nil {
		return err
	}
	if _, err := call("PUT", base+"/admin/v1/catalog", externalAdminToken, cat); err != nil {
		return fmt.Errorf("cannot load the catalog: %w", err)
	}
	now := time.Now().UTC()
	sale, _ := json.Marshal(map[string]any{
		"sale_id": externalSaleID, "store_id": "b1", "sku_id": "bk0", "price": 9900,
		"quantity": externalSaleQuantity, "per_user_limit": externalPerUserLimit, "hold_seconds": externalHoldSeconds,
		"starts_at": now.Add(-time.Second), "ends_at": now.Add(2 * time.Hour),
	})
	if _, err := call("POST", base+"/admin/v1/flash-sales", externalAdminToken, sale); err != nil {
		return fmt.Errorf("cannot create the sale: %w", err)
	}
	return nil
}

func login(base, code string) (string, error) {
	body, _ := json.Marshal(map[string]string{"code": code})
	data, err := call("POST", base+"/api/v1/session", "", body)
	if err != nil {
		return "", fmt.Errorf("cannot log in %s: %w", code, err)
	}
	var v struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(data, &v); err != nil || v.Token == "" {
		return "", fmt.Errorf("cannot log in %s: no token in %s", code, data)
	}
	return v.Token, nil
}

// sampleHTTP makes one request of a scenario and returns the answer's
// body, to size the floor's.
func sampleHTTP(base, method, path, token string) ([]byte, error) {
	var body []byte
	if method == "POST" {
		body = []byte(`{"quantity":1}`)
	}
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: externalRequestTimeout}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("sample request: HTTP %d: %s", resp.StatusCode, data)
	}
	return data, nil
}

// call sends a JSON request and returns the envelope's data (API.md:
// {"code": 0, "data": ...}), or an error naming the code.
func call(method, url, token string, body []byte) (json.RawMessage, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: externalRequestTimeout}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var env struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &env); err != nil || resp.StatusCode != 200 || env.Code != 0 {
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, url, resp.StatusCode, raw)
	}
	return env.Data, nil
}

// wrkDoneLua prints what the run counted on one line that runWrk parses.
const wrkDoneLua = `
done = function(s, latency, requests)
  io.write(string.format("WRK-RESULT requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    s.requests, s.duration, s.errors.connect, s.errors.read, s.errors.write, s.errors.status, s.errors.timeout))
end
`

// wrkPageLua is a plain GET (the URL carries the guide).
const wrkPageLua = "-- surge bench wrk: guide page\n" + wrkDoneLua

// wrkReserveLua posts a reservation with the next user's bearer token on
// every request. The floor gets the same script, so the load generator
// spends the same per request on both sides.
func wrkReserveLua(tokens []string) string {
	var b strings.Builder
	b.WriteString("-- surge bench wrk: flash reserve, one user's token per request in turn\nlocal tokens = {\n")
	for _, t := range tokens {
		b.WriteString("  " + strconv.Quote(t) + ",\n")
	}
	b.WriteString(`}
local n = #tokens
local i = 0
local headers = {["Content-Type"] = "application/json"}
local body = '{"quantity":1}'
request = function()
  i = i + 1
  headers["Authorization"] = "Bearer " .. tokens[(i % n) + 1]
  return wrk.format("POST", nil, headers, body)
end
`)
	b.WriteString(wrkDoneLua)
	return b.String()
}

// runWrk runs wrk once against url. server and redis are the pids whose
// CPU time the run records (redis 0: none).
func runWrk(ctx context.Context, wrkPath string, o ExternalOptions, script, url string, server, redis int) (WrkStats, error) {
	secs := int(o.Slice / time.Second)
	cmd := exec.CommandContext(ctx, wrkPath, "-t", strconv.Itoa(externalThreads), "-c", strconv.Itoa(o.Conns),
		"-d", strconv.Itoa(secs)+"s", "--timeout", "10s", "-s", script, url)
	before := sampleCPU(server, redis)
	out, err := cmd.CombinedOutput()
	after := sampleCPU(server, redis)
	if err != nil {
		return WrkStats{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	st, err := ParseWrk(string(out))
	if err != nil {
		return WrkStats{}, fmt.Errorf("%w: %s", err, out)
	}
	if st.Requests-st.Non2xx <= 0 {
		return st, fmt.Errorf("wrk: no successful request against %s: %s", url, out)
	}
	if before.ok && after.ok && cmd.ProcessState != nil {
		st.ServerCPU, st.RedisCPU = after.server-before.server, after.redis-before.redis
		st.WrkCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		st.MachineBusy, st.MachineAll = after.busy-before.busy, after.all-before.all
	}
	return st, nil
}

// cpuSample is the CPU time of a run's processes and machine at one
// moment; ok is false if any of them could not be read.
type cpuSample struct {
	server, redis, busy, all time.Duration
	ok                       bool
}

func sampleCPU(server, redis int) cpuSample {
	var c cpuSample
	var okServer, okMachine bool
	c.server, okServer = cputime.PID(server)
	c.busy, c.all, okMachine = cputime.Machine()
	c.ok = okServer && okMachine
	if redis > 0 {
		var okRedis bool
		c.redis, okRedis = cputime.PID(redis)
		c.ok = c.ok && okRedis
	}
	return c
}

// ParseWrk reads the WRK-RESULT line that wrkDoneLua prints.
func ParseWrk(out string) (WrkStats, error) {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "WRK-RESULT ")
		if !ok {
			continue
		}
		vals := map[string]int64{}
		for _, kv := range strings.Fields(rest) {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return WrkStats{}, fmt.Errorf("wrk: bad result field %q", kv)
			}
			vals[k] = n
		}
		return WrkStats{
			Requests:     vals["requests"],
			Non2xx:       vals["status"],
			SocketErrors: vals["connect"] + vals["read"] + vals["write"] + vals["timeout"],
			Elapsed:      time.Duration(vals["duration_us"]) * time.Microsecond,
		}, nil
	}
	return WrkStats{}, errors.New("wrk: no WRK-RESULT line in its output")
}

// Markdown is the external run on its own: the fragment bench/wrk.sh
// writes, pasteable into BENCHMARKS.md.
func (e *External) Markdown() string {
	return "## External (wrk)\n\n" + e.body()
}

func (e *External) body() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run at %s on %s. %s\n\n", e.Started.UTC().Format(time.RFC3339), e.Machine, e.method())
	b.WriteString("| scenario | Surge | floor | ratio | target | met | Surge non-2xx / socket errors |\n|---|---:|---:|---:|---:|---|---:|\n")
	for _, r := range e.Rows {
		ratio, target, met := fmt.Sprintf("%.2f", r.Ratio()), "—", "—"
		if t, ok := targetOf(r.Key); ok {
			ok := t.met(r.Row, -1)
			ratio, target, met = t.ratioText(r.Ratio(), ok), t.String(), yesNo(ok)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %d / %d |\n", r.Scenario, value(r.Surge, r.Unit), value(r.Floor, r.Unit), ratio, target, met, r.SurgeStats.Non2xx, r.SurgeStats.SocketErrors)
	}
	b.WriteString("\n")
	e.writeCPU(&b, "###")
	fmt.Fprintf(&b, "%s\n\n", e.limits())
	return b.String()
}

// writeCPU is the table of CPU time per request of each side, under a
// heading of level h; nothing when the run could not read CPU times.
func (e *External) writeCPU(b *strings.Builder, h string) {
	var rows []ExternalRow
	for _, r := range e.Rows {
		if r.SurgeStats.HasCPU() && r.FloorStats.HasCPU() {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "%s CPU per request (wrk)\n\n", h)
	b.WriteString("CPU time per successful response in the same wrk runs, in µs, read from /proc before and after each run: the measured server's process (Surge or the floor server), redis-server (Surge on the redis backend), wrk, their sum, and the share of the whole machine's CPU time that was busy. Each process's figure includes the kernel's work done on its behalf (the loopback network's sending side mostly); what the machine did beyond the three is the rest of the kernel's network work and other tenants.\n\n")
	b.WriteString("| scenario | side | server µs | redis-server µs | wrk µs | all three µs | machine busy |\n|---|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		for _, side := range []struct {
			name string
			st   WrkStats
		}{{"Surge", r.SurgeStats}, {"floor", r.FloorStats}} {
			st := side.st
			redis := "—"
			if side.name == "Surge" && r.Backend == "redis" {
				redis = fmt.Sprintf("%.1f", st.PerRequest(st.RedisCPU))
			}
			fmt.Fprintf(b, "| %s | %s | %.1f | %s | %.1f | %.1f | %.0f%% |\n", r.Scenario, side.name, st.PerRequest(st.ServerCPU), redis, st.PerRequest(st.WrkCPU), st.cpuPerRequest(), 100*st.Busy())
		}
	}
	b.WriteString("\n")
}

// cpuPerRequest is the server's, redis-server's and wrk's CPU time per
// successful response, in µs.
func (w WrkStats) cpuPerRequest() float64 {
	return w.PerRequest(w.ServerCPU + w.RedisCPU + w.WrkCPU)
}

// limits says what bounds the external figures, from the run's CPU times
// where it has them: for each scenario, how much of the ratio is CPU per
// request and how much is the machine idling. Throughput is busy CPU over
// CPU per request, so the ratio is the floor's CPU per request over
// Surge's, times Surge's busy share over the floor's.
func (e *External) limits() string {
	var parts []string
	for _, r := range e.Rows {
		s, f := r.SurgeStats, r.FloorStats
		if !s.HasCPU() || !f.HasCPU() || s.cpuPerRequest() <= 0 || f.Busy() <= 0 {
			continue
		}
		cpu := f.cpuPerRequest() / s.cpuPerRequest()
		idle := s.Busy() / f.Busy()
		parts = append(parts, fmt.Sprintf("%s: %.2f for CPU per request (%.1f µs against %.1f) times %.2f for the machine's busy share (%.0f%% against %.0f%%)", r.Scenario, cpu, s.cpuPerRequest(), f.cpuPerRequest(), idle, 100*s.Busy(), 100*f.Busy()))
	}
	const fsync = "On Redis each turn of the event loop writes and fsyncs the AOF (`appendfsync always`) before it answers, and the requests of that turn wait for it; on Pebble each yes waits for a synced WAL write. While requests wait on a disk, the machine idles unless other requests fill it."
	if len(parts) == 0 {
		return "The run could not read CPU times (they come from Linux's /proc), so it cannot say how much of each ratio is CPU per request and how much is idling. " + fsync
	}
	return "Each ratio splits into what the CPU per request costs (the floor's over Surge's, wrk included on both sides) and what idling costs (Surge's busy share of the machine over the floor's): " + strings.Join(parts, "; ") + ". " + fsync
}

// method says how the external run measures, for the page and the
// fragment alike.
func (e *External) method() string {
	return fmt.Sprintf("%s, %d thread, %d connections, keep-alive over loopback, against `surge serve` from %s in its own process, alternating in %d slices of %v per side with `surge bench floor-server` (a bare fasthttp server answering a fixed JSON body of the same size); both get the same wrk script, so the generator's cost per request is the same. The server runs with the risk buckets, the devices-per-address signal, the page token and the lottery window off (`SURGE_RISK_IP_RATE=0`, `SURGE_RISK_USER_RATE=0`, `SURGE_RISK_DEVICES_PER_IP=0`, `SURGE_RISK_PAGE_TOKEN_OFF=true`, `SURGE_SALES_LOTTERY_WINDOW=off`); requests rotate through %d logged-in users' tokens, on a sale of %d units with a per-user limit of %d. Only 2xx answers count.",
		e.Wrk, externalThreads, e.Conns, orNotRecorded(e.Label), alternateSegments, e.Slice, e.Users, externalSaleQuantity, externalPerUserLimit)
}
