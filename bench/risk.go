package bench

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/inventory"
)

// The overhead of the risk signals (issue 18): the memory backend's flash
// reserve through the whole gateway with the built-in risk hook's signals
// off (no page token judged, no linkage counted, no account age) and on
// (every signal measured:
// each request carries its own device id and a page token old enough,
// the linkage counts, the token's seen-set and the account's first
// session are consulted), each next to the fasthttp floor, then on against
// off directly. The on-server does not limit a token's uses (a closed loop
// sends each worker's token thousands of times; the seen-set is still
// consulted on every request), and all workers come from 127.0.0.1, so
// the devices-per-address signal is raised on every request (below the
// deny score on its own): the requests are answered 200, as off. Both
// servers get the same requests, device id and page token included (a
// client sends them whatever the server's settings), so that the
// comparison charges the signals' work, not the client's sending of two
// headers.

// riskRounds is the rounds of the on-against-off comparison (each side
// gets 2 x Duration in all).
const riskRounds = 12

// riskOnConfig is the hook of the "on" server: the linkage counts of
// `surge serve`'s defaults, page tokens, a minimum account age.
func riskOnConfig() engine.RiskConfig {
	return engine.RiskConfig{
		AccountsPerDevice: 5, DevicesPerIP: 30,
		PageTokenUses: 1 << 30,
		MinAccountAge: time.Millisecond,
	}
}

// runRiskHTTP adds the risk rows to t.
func runRiskHTTP(ctx context.Context, opts Options, t *Table, logf func(string, ...any)) error {
	start := func(cfg engine.RiskConfig) (*Surge, []string, error) {
		hook, err := engine.NewRiskHook(cfg)
		if err != nil {
			return nil, nil, err
		}
		s, err := StartSurge(ctx, engine.Options{Store: inventory.NewMemory(inventory.Options{}), Risk: hook})
		if err != nil {
			return nil, nil, err
		}
		if err := setupBenchSale(ctx, s.Engine, "bench-fs"); err != nil {
			s.Close()
			return nil, nil, err
		}
		toks, err := tokens(s.Addr, opts.Conns, "rk")
		if err != nil {
			s.Close()
			return nil, nil, err
		}
		return s, toks, nil
	}
	off, offTokens, err := start(engine.RiskConfig{PageTokenOff: true})
	if err != nil {
		return err
	}
	defer off.Close()
	on, onTokens, err := start(riskOnConfig())
	if err != nil {
		return err
	}
	defer on.Close()
	pageToks, err := pageTokens(on.Addr, opts.Conns)
	if err != nil {
		return err
	}
	// Older than the minimum think time before the first request.
	time.Sleep(engine.RiskPageTokenMinAgeDefault + 100*time.Millisecond)
	offReq := reserveRequest(offTokens)
	devices := make([][]byte, len(pageToks))
	pageHdrs := make([][]byte, len(pageToks))
	for i := range devices {
		devices[i] = []byte("bench-device-" + strconv.Itoa(i))
		pageHdrs[i] = []byte(pageToks[i])
	}
	// withSignals adds the device and page-token headers to build's
	// requests (names already canonical: nothing to normalize).
	withSignals := func(build Request) Request {
		return func(w, seq int, req *fasthttp.Request) {
			build(w, seq, req)
			req.Header.SetCanonical(headerDeviceID, devices[w%len(devices)])
			req.Header.SetCanonical(headerPageToken, pageHdrs[w%len(pageHdrs)])
		}
	}
	onReq := withSignals(reserveRequest(onTokens))
	// The off server ignores both headers (its token check is off, it
	// counts no links) but receives them, as it would from the app.
	offSigReq := withSignals(offReq)
	body, err := sample(on.Addr, onReq)
	if err != nil {
		return fmt.Errorf("risk on: %w", err)
	}
	floor, err := StartFloorServer("127.0.0.1:0", body)
	if err != nil {
		return err
	}
	defer floor.Close()
	loop := func(addr string, build Request) func(time.Duration) (Throughput, error) {
		return func(d time.Duration) (Throughput, error) { return ClosedLoop(ctx, addr, opts.Conns, d, build, postOK) }
	}
	floorLoop := func(d time.Duration) (Throughput, error) {
		return ClosedLoop(ctx, floor.Addr, opts.Conns, d, offReq, getOK)
	}
	var offRate float64
	for _, c := range []struct {
		key, name string
		s         *Surge
		build     Request
	}{
		{"http/reserve-risk-off", "flash reserve, memory, risk signals off", off, offSigReq},
		{"http/reserve-risk-on", "flash reserve, memory, risk signals on", on, onReq},
	} {
		ft, st, err := Alternate(opts.Duration, floorLoop, loop(c.s.Addr, c.build))
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		row := Row{Key: c.key, Scenario: c.name + fmt.Sprintf(" (%d B body)", len(body)), Surge: st.PerSecond(), Floor: ft.PerSecond(), Unit: "req/s"}
		logf("%-40s %10.0f req/s   floor %10.0f req/s   ratio %.2f", c.name, row.Surge, row.Floor, row.Ratio())
		t.Rows = append(t.Rows, row)
		if c.s == off {
			offRate = row.Ratio()
		}
	}
	// On against off, alternating: the drop itself. Each round measures
	// both, in turn (off first in even rounds, on first in odd ones, so a
	// side never always follows the other); the ratio is the median of
	// the rounds' ratios, so that a round the machine spent elsewhere
	// moves it little.
	rounds, err := AlternateRounds(riskRounds, 2*opts.Duration/riskRounds, loop(off.Addr, offSigReq), loop(on.Addr, onReq))
	if err != nil {
		return fmt.Errorf("risk on vs off: %w", err)
	}
	row := rounds.Row("http/reserve-risk-on-vs-off", "flash reserve, memory, risk signals on vs off", "req/s")
	logf("%-40s %10.0f req/s   off   %10.0f req/s   ratio %.2f (off to floor %.2f): %s", "risk on vs off", row.Surge, row.Floor, row.Ratio(), offRate, row.Scenario)
	t.Rows = append(t.Rows, row)
	return nil
}

// The headers of the signals, in canonical form.
var (
	headerDeviceID  = []byte("X-Device-Id")
	headerPageToken = []byte("X-Surge-Page-Token")
)

// pageTokens gets n page tokens from the bench store's page.
func pageTokens(addr string, n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		resp, err := http.Get("http://" + addr + "/api/v1/stores/b1/page")
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		if out[i] = resp.Header.Get("X-Surge-Page-Token"); resp.StatusCode != 200 || out[i] == "" {
			return nil, fmt.Errorf("bench: store page: HTTP %d without a page token", resp.StatusCode)
		}
	}
	return out, nil
}
