package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMDrainsAndFlushes pays for reservations, stops the server with
// SIGTERM and checks that it exits cleanly with every order written.
func TestSIGTERMDrainsAndFlushes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	p := startSurge(t, "--data", data)
	const saleID = "term-sale"
	setupSale(t, p.base, saleID, 50, 100)
	for i := 0; i < 20; i++ {
		tok := login(t, p.base, fmt.Sprintf("tu%02d", i))
		var r reservation
		mustCall(t, "POST", p.base+"/api/v1/flash-sales/"+saleID+"/reservations", tok, map[string]any{"quantity": 1}, &r)
		mustCall(t, "POST", p.base+"/api/v1/reservations/"+r.ReservationID+"/pay", tok, map[string]any{"payment_id": fmt.Sprintf("tp%02d", i)}, nil)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("surge serve did not exit after SIGTERM:\n%s", p.output())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d; want 0\n%s", code, p.output())
	}
	p2 := startSurge(t, "--data", data)
	s := getStats(t, p2.base)
	if s.Sales[saleID].Sold != 20 || s.Orders.Written != 20 {
		t.Fatalf("after SIGTERM and restart: sale %+v orders %+v; want 20 sold, 20 orders", s.Sales[saleID], s.Orders)
	}
}

// TestServeConfigPrecedence checks --config FILE < SURGE_* environment <
// flags on the real binary, and that a bad setting stops start-up with a
// message naming it.
func TestServeConfigPrecedence(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "surge.json")
	if err := os.WriteFile(cfg, []byte(`{"backend": "nonsense"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runSurge(t, "serve", "--config", cfg, "--data", dir)
	if err == nil || !strings.Contains(out, "backend") {
		t.Fatalf("serve with a bad backend in the file: err %v, output %q; want a failure naming backend", err, out)
	}
	// The flag wins over the file: the same file with --backend memory starts.
	p := startSurge(t, "--config", cfg, "--backend", "memory", "--data", dir)
	env, err := call("GET", p.base+"/healthz", "", nil, nil)
	if err != nil {
		t.Fatalf("healthz: %v (%+v)", err, env)
	}
}

func runSurge(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(surgeBinary(t), args...)
	cmd.Env = append(os.Environ(), "SURGE_ADMIN_TOKEN="+testAdminToken)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestServeRefusesWeakAdminToken: an admin token anyone could guess
// (SURGE_ADMIN_TOKEN=a) stops surge serve at start with a clear word,
// instead of guarding /admin/v1 with it.
func TestServeRefusesWeakAdminToken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	cmd := exec.Command(surgeBinary(t), "serve", "--backend", "memory", "--data", t.TempDir(), "--addr", freeAddr(t))
	cmd.Env = append(os.Environ(), "SURGE_ADMIN_TOKEN=a")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "admin token") || !strings.Contains(string(out), "at least 16") {
		t.Fatalf("serve with SURGE_ADMIN_TOKEN=a: err %v, output %q; want a refusal naming the admin token", err, out)
	}
}
