package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/redistest"
)

// answer is an HTTP answer with its headers.
type answer struct {
	status int
	header http.Header
	env    envelope
}

// rawCall is call with the status and headers of the answer.
func rawCall(t *testing.T, method, url, token string, body any) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, &a.env); err != nil {
		t.Fatalf("%s %s: HTTP %d, not an envelope: %q", method, url, resp.StatusCode, raw)
	}
	return a
}

// want503 checks a refusal of a backend that cannot be asked: 503 / 50300
// with Retry-After, and a message that contains msg.
func want503(t *testing.T, what string, a answer, msg string) {
	t.Helper()
	if a.status != 503 || a.env.Code != 50300 || a.header.Get("Retry-After") == "" || !strings.Contains(a.env.Msg, msg) {
		t.Fatalf("%s: HTTP %d, code %d, Retry-After %q, msg %q; want 503/50300 with Retry-After, msg with %q",
			what, a.status, a.env.Code, a.header.Get("Retry-After"), a.env.Msg, msg)
	}
}

// metricsText is GET /metrics.
func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := httpClient.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// eventually polls cond every 50 ms for at most limit: waiting for a
// state, not asserting a timing.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(limit); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("still not %s after %v", what, limit)
		}
	}
}

// TestRedisFaultsThroughTheBinary: two `surge serve --backend redis`
// nodes on one real redis-server.
//
//   - Redis killed: after a few failures the inventory's circuit opens and
//     reserves are answered 503/50300 with Retry-After by the circuit
//     ("circuit open"), /readyz says not ready and why, /metrics shows the
//     circuit; Redis restarted with its AOF: the probe closes the circuit,
//     reserves are 200 again, nothing was lost.
//   - Redis restarted empty (no AOF): both nodes stop taking reservations
//     (reserve and checkout 503 "lost their data"), /readyz, /metrics, the
//     stats and the reconciliation say so; POST /admin/v1/recover on one
//     node resumes both (the other adopts the recovered epoch), the
//     catalog's listings are seeded again, the lost sale is named.
func TestRedisFaultsThroughTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	rs := redistest.Start(t)
	env := []string{"SURGE_CIRCUIT_FAILURES=3", "SURGE_CIRCUIT_OPEN_FOR=300ms"}
	args := func() []string { return []string{"--backend", "redis", "--redis", rs.Addr, "--data", t.TempDir()} }
	a := startSurgeAt(t, freeAddr(t), env, args()...)
	b := startSurgeAt(t, freeAddr(t), env, args()...)
	const sale = "bk-sale"
	setupSale(t, a.base, sale, 50, 100)
	eventually(t, 10*time.Second, "the sale seen on node B", func() bool {
		env, err := call("GET", b.base+"/api/v1/flash-sales/"+sale, "", nil, nil)
		return err == nil && env.Code == 0
	})
	// Sessions are signed, not stored: log the buyers in before the faults.
	toks := make([]string, 120)
	for i := range toks {
		toks[i] = login(t, a.base, fmt.Sprintf("bk%03d", i))
	}
	next := 0
	reserve := func(base string) answer {
		next++
		return rawCall(t, "POST", base+"/api/v1/flash-sales/"+sale+"/reservations", toks[next-1], map[string]int{"quantity": 1})
	}
	if r := reserve(a.base); r.env.Code != 0 {
		t.Fatalf("reserve before the faults: %+v", r.env)
	}

	// Redis killed.
	rs.Stop()
	for i := 0; ; i++ {
		r := reserve(a.base)
		if r.status != 503 || r.env.Code != 50300 || r.header.Get("Retry-After") == "" {
			t.Fatalf("reserve %d with Redis killed: HTTP %d, %+v; want 503/50300 with Retry-After", i, r.status, r.env)
		}
		if strings.Contains(r.env.Msg, "circuit open") {
			break
		}
		if i == 20 {
			t.Fatalf("after 20 reserves with Redis killed the circuit is not open: %q", r.env.Msg)
		}
	}
	for i := range 20 {
		want503(t, fmt.Sprintf("reserve %d with the circuit open", i), reserve(a.base), "circuit open")
	}
	want503(t, "an unknown sale with Redis killed", rawCall(t, "GET", a.base+"/api/v1/flash-sales/nosuch", "", nil), "")
	if r := rawCall(t, "GET", a.base+"/readyz", "", nil); r.status != 503 || !strings.Contains(r.env.Msg, "not ready: ") {
		t.Fatalf("/readyz with Redis killed: %d %q; want 503 with the reason", r.status, r.env.Msg)
	}
	eventually(t, 10*time.Second, "the circuit shown in /metrics", func() bool {
		m := metricsText(t, a.base)
		return strings.Contains(m, `surge_backend_circuit_state{backend="inventory"} 2`) ||
			strings.Contains(m, `surge_backend_circuit_state{backend="inventory"} 1`)
	})

	// Redis back with its AOF: nothing lost, the circuit closes.
	rs.Restart(t, true)
	eventually(t, 30*time.Second, "reserving again after the restart", func() bool { return reserve(a.base).env.Code == 0 })
	for _, n := range []*proc{a, b} {
		eventually(t, 30*time.Second, "ready after the restart", func() bool { return rawCall(t, "GET", n.base+"/readyz", "", nil).status == 200 })
	}
	if st := getStats(t, a.base); st.Sales[sale].Supplied != 50 || st.Sales[sale].Held < 2 {
		t.Fatalf("sale after a restart with AOF: %+v; want 50 supplied and the holds kept", st.Sales[sale])
	}

	// Redis restarted empty.
	rs.Stop()
	rs.Restart(t, false)
	for _, n := range []*proc{a, b} {
		eventually(t, 30*time.Second, "the data loss on /readyz", func() bool {
			return strings.Contains(rawCall(t, "GET", n.base+"/readyz", "", nil).env.Msg, "Redis lost data at ")
		})
	}
	want503(t, "reserve after the loss", reserve(a.base), "lost their data")
	ck := map[string]any{"store_id": "p1", "items": []any{map[string]any{"sku_id": "pk1", "quantity": 1}}}
	want503(t, "checkout on node B after the loss", rawCall(t, "POST", b.base+"/api/v1/checkout", toks[next], ck), "lost their data")
	eventually(t, 10*time.Second, "surge_records_data_lost 1", func() bool {
		return strings.Contains(metricsText(t, a.base), "\nsurge_records_data_lost 1\n")
	})
	var st struct {
		DataLost *struct {
			At time.Time `json:"at"`
		} `json:"data_lost"`
		Missing []struct{ Kind, ID, Why string } `json:"missing"`
	}
	mustCall(t, "GET", a.base+"/admin/v1/stats", testAdminToken, nil, &st)
	if st.DataLost == nil || st.DataLost.At.IsZero() || !strings.Contains(fmt.Sprint(st.Missing), sale) {
		t.Fatalf("stats after the loss: data_lost %+v, missing %+v; want when, and the sale named", st.DataLost, st.Missing)
	}
	var recon struct {
		OK            bool                         `json:"ok"`
		Discrepancies []struct{ Kind, Msg string } `json:"discrepancies"`
	}
	mustCall(t, "GET", a.base+"/admin/v1/reconcile", testAdminToken, nil, &recon)
	if recon.OK || !strings.Contains(fmt.Sprint(recon.Discrepancies), "data_lost") || !strings.Contains(fmt.Sprint(recon.Discrepancies), sale) {
		t.Fatalf("reconcile after the loss: %+v; want data_lost and the sale's pool missing", recon)
	}

	// The operator resumes on one node; both take reservations again.
	var rc struct {
		Recovered bool                             `json:"recovered"`
		Missing   []struct{ Kind, ID, Why string } `json:"missing"`
	}
	mustCall(t, "POST", a.base+"/admin/v1/recover", testAdminToken, nil, &rc)
	if !rc.Recovered || !strings.Contains(fmt.Sprint(rc.Missing), sale) {
		t.Fatalf("recover = %+v; want recovered, the sale named missing", rc)
	}
	for _, n := range []*proc{a, b} {
		eventually(t, 30*time.Second, "ready after recover", func() bool { return rawCall(t, "GET", n.base+"/readyz", "", nil).status == 200 })
	}
	if r := rawCall(t, "POST", b.base+"/api/v1/checkout", toks[next], ck); r.env.Code != 0 {
		t.Fatalf("checkout on node B after recover: %d %+v; want it taken", r.status, r.env)
	}
	if m := metricsText(t, a.base); !strings.Contains(m, `surge_admin_actions_total{action="recover"} 1`) {
		t.Errorf("/metrics after recover lacks surge_admin_actions_total{action=\"recover\"} 1")
	}
}
