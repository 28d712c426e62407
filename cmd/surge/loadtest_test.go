package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runLoadtest runs `surge loadtest args...` and returns its exit status.
func runLoadtest(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := newLoadtestCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return 0, out.String()
	}
	return exitCode(err), out.String() + err.Error()
}

func TestLoadtestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"--scenario", "flash"}, // no target
		{"--target", "http://127.0.0.1:1"},
		{"--target", "http://127.0.0.1:1", "--scenario", "stampede"},
		{"--target", "http://127.0.0.1:1", "--scenario", "flash", "--bots", "2"},
		{"--target", "http://127.0.0.1:1", "--scenario", "flash", "--no-such-flag"},
		{"--target", "http://127.0.0.1:1", "--scenario", "flash", "--duration", "soon"},
		{"--target", "http://127.0.0.1:1", "--scenario", "flash", "extra-arg"},
		{"--target", "http://127.0.0.1:1", "--scenario", "flash", "--setup"}, // no admin token
		{"--target", "http://127.0.0.1:1", "--scenario", "flash", "--bots", "0.1", "--bot-kinds", "sprinter,bogus"},
		{"--target", "http://127.0.0.1:1", "--scenario", "flash", "--farm-accounts-per-device", "0"},
		{"--target", "http://127.0.0.1:1", "--scenario", "flash", "--page-think-min", "3s", "--page-think-max", "1s"},
		{"--target", "http://127.0.0.1:1", "--scenario", "flash", "--max-bot-unit-share", "2"},
		{"--target", "http://127.0.0.1:1", "--scenario", "flash", "--max-bot-win-ratio", "-1"},
		{"--target", "http://127.0.0.1:1", "--scenario", "flash", "--max-human-risk-refused", "1.5"},
	} {
		if code, out := runLoadtest(t, args...); code != 2 {
			t.Errorf("surge loadtest %q: exit %d; want 2\n%s", args, code, out)
		}
	}
}

func TestLoadtestUnreachableExit2(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	if code, out := runLoadtest(t, "--target", url, "--scenario", "browse", "--stores", "s1", "--quiet", "--timeout", "1s"); code != 2 {
		t.Errorf("exit %d; want 2\n%s", code, out)
	}
}

// statsServer serves store pages and admin stats whose one sale is sold
// as the test says.
func statsServer(t *testing.T, sold int) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /admin/v1/stats", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"code":40100,"msg":"no"}`)
			return
		}
		fmt.Fprintf(w, `{"code":0,"msg":"ok","data":{"sales":{"s":{"supplied":10,"held":0,"sold":%d,"remaining":%d}},"deals":{},
			"listings":{"st1/k1":{},"st2/k1":{}},"orders":{"written":0,"lag":0}}}`, sold, 10-sold)
	})
	mux.HandleFunc("GET /api/v1/stores/{s}/page", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"code":0,"msg":"ok","data":{"products":[{"sku_id":"k1"}]}}`)
	})
	mux.HandleFunc("GET /api/v1/stores/{s}/products/{k}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"code":0,"msg":"ok","data":{}}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestLoadtestExitCodesAndFiles(t *testing.T) {
	dir := t.TempDir()
	report, plot := filepath.Join(dir, "out.json"), filepath.Join(dir, "plot.html")
	base := []string{"--admin-token", "tok", "--scenario", "browse", "--rate", "200", "--duration", "100ms",
		"--quiet", "--report", report, "--html", plot, "--think", "1ms"}

	code, out := runLoadtest(t, append([]string{"--target", statsServer(t, 10)}, base...)...)
	if code != 0 {
		t.Fatalf("healthy server: exit %d; want 0\n%s", code, out)
	}
	if !strings.Contains(out, "invariants: OK") || !strings.Contains(out, "store_page") {
		t.Errorf("summary:\n%s", out)
	}
	var doc struct {
		Invariants struct {
			OK         bool  `json:"ok"`
			Violations []any `json:"violations"`
		} `json:"invariants"`
		Routes map[string]struct {
			Count int64   `json:"count"`
			P99Ms float64 `json:"p99_ms"`
		} `json:"routes"`
		Outcomes map[string]int64 `json:"outcomes"`
	}
	b, err := os.ReadFile(report)
	if err != nil || json.Unmarshal(b, &doc) != nil || !doc.Invariants.OK || doc.Routes["store_page"].Count == 0 {
		t.Fatalf("report (%v):\n%s", err, b)
	}
	if h, err := os.ReadFile(plot); err != nil || !bytes.Contains(h, []byte("<svg")) {
		t.Errorf("plot (%v)", err)
	}

	code, out = runLoadtest(t, append([]string{"--target", statsServer(t, 11)}, base...)...)
	if code != 1 {
		t.Fatalf("server selling 11 of 10: exit %d; want 1\n%s", code, out)
	}
	if !strings.Contains(out, "oversell") {
		t.Errorf("summary does not name the violation:\n%s", out)
	}
	b, _ = os.ReadFile(report)
	if json.Unmarshal(b, &doc) != nil || doc.Invariants.OK || len(doc.Invariants.Violations) == 0 {
		t.Errorf("report after oversell:\n%s", b)
	}
}

func TestLoadtestThresholdsExit1(t *testing.T) {
	dir := t.TempDir()
	report, plot := filepath.Join(dir, "out.json"), filepath.Join(dir, "plot.html")
	base := []string{"--admin-token", "tok", "--scenario", "browse", "--rate", "200", "--duration", "100ms",
		"--quiet", "--report", report, "--html", plot, "--think", "1ms", "--target", statsServer(t, 10)}

	// Generous limits: exit 0, and the verdicts are in the report.
	code, out := runLoadtest(t, append([]string{"--max-p99", "1m", "--max-error-rate", "0"}, base...)...)
	if code != 0 {
		t.Fatalf("generous thresholds: exit %d; want 0\n%s", code, out)
	}
	if !strings.Contains(out, "thresholds: OK") || !strings.Contains(out, "ok     p99 of store_page <= 1m0s") {
		t.Errorf("summary does not show the thresholds:\n%s", out)
	}
	var doc struct {
		Thresholds struct {
			OK           bool     `json:"ok"`
			MaxP99Ms     float64  `json:"max_p99_ms"`
			MaxErrorRate *float64 `json:"max_error_rate"`
		} `json:"thresholds"`
		ErrorRate *float64 `json:"error_rate"`
	}
	b, err := os.ReadFile(report)
	if err != nil || json.Unmarshal(b, &doc) != nil || !doc.Thresholds.OK || doc.Thresholds.MaxP99Ms != 60000 ||
		doc.Thresholds.MaxErrorRate == nil || *doc.Thresholds.MaxErrorRate != 0 || doc.ErrorRate == nil {
		t.Errorf("report (%v): %+v", err, doc)
	}

	// A p99 nobody can meet: exit 1, the route named.
	code, out = runLoadtest(t, append([]string{"--max-p99", "1ns"}, base...)...)
	if code != 1 {
		t.Fatalf("--max-p99 1ns: exit %d; want 1\n%s", code, out)
	}
	for _, want := range []string{"thresholds: EXCEEDED", "FAILED p99 of store_page <= 1ns", "threshold(s) exceeded: p99 of", "(limit 1ns)"} {
		if !strings.Contains(out, want) {
			t.Errorf("--max-p99 1ns: output does not contain %q:\n%s", want, out)
		}
	}
	if h, err := os.ReadFile(plot); err != nil || !bytes.Contains(h, []byte(`id="thresholds"`)) || !bytes.Contains(h, []byte("FAILED")) {
		t.Errorf("HTML does not show the failed threshold (%v)", err)
	}
}

func TestLoadtestErrorRateExit1(t *testing.T) {
	// Every product page answers 500 without an envelope: errors.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /api/v1/stores/{s}/page", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"code":0,"msg":"ok","data":{"products":[{"sku_id":"k1"}]}}`)
	})
	mux.HandleFunc("GET /api/v1/stores/{s}/products/{k}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
	})
	mux.HandleFunc("GET /admin/v1/stats", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"code":0,"msg":"ok","data":{"sales":{},"deals":{},"listings":{"st1/k1":{}},"orders":{"written":0,"lag":0}}}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	base := []string{"--target", srv.URL, "--admin-token", "tok", "--scenario", "browse", "--stores", "st1", "--rate", "200", "--duration", "100ms", "--quiet", "--think", "1ms"}

	code, out := runLoadtest(t, append([]string{"--max-error-rate", "0.01"}, base...)...)
	if code != 1 {
		t.Fatalf("--max-error-rate 0.01 against a failing server: exit %d; want 1\n%s", code, out)
	}
	if !strings.Contains(out, "FAILED error rate of the main phase <= 0.01") || !strings.Contains(out, "http_500") {
		t.Errorf("summary does not name the threshold or the outcome:\n%s", out)
	}
	if code, out := runLoadtest(t, append([]string{"--max-error-rate", "1"}, base...)...); code != 0 {
		t.Errorf("--max-error-rate 1: exit %d; want 0\n%s", code, out)
	}
	if code, out := runLoadtest(t, base...); code != 0 {
		t.Errorf("no threshold: exit %d; want 0 (errors alone do not fail a run)\n%s", code, out)
	}
	for _, bad := range [][]string{{"--max-error-rate", "1.5"}, {"--max-error-rate", "-0.1"}, {"--max-p99", "-1s"}, {"--max-p99", "fast"}} {
		if code, out := runLoadtest(t, append(bad, base...)...); code != 2 {
			t.Errorf("%q: exit %d; want 2\n%s", bad, code, out)
		}
	}
}
