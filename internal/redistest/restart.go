package redistest

import (
	"net"
	"os/exec"
	"strconv"
	"testing"
)

// Faults for tests of a backend going away: a server killed and started
// again on the same address (with its data, or empty), or frozen
// (SIGSTOP: it holds its connections and answers nothing, as a hung Redis
// does) and thawed.

// Restart starts redis-server again on s's address after Stop. With keep,
// it starts on its own directory, so the append-only file brings its data
// back; without, on a new empty directory and without persistence, as a
// Redis restarted without AOF comes back empty. extra are more "--name
// value" arguments.
func (s *Server) Restart(tb testing.TB, keep bool, extra ...string) {
	tb.Helper()
	if s.cmd != nil {
		tb.Fatal("redistest: Restart of a running server; Stop it first")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	_, p, err := net.SplitHostPort(s.Addr)
	if err != nil {
		tb.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		tb.Fatal(err)
	}
	dir := s.Dir
	if !keep {
		dir = tb.TempDir()
		extra = append([]string{"--appendonly", "no"}, extra...)
	}
	ns, err := start(bin, dir, port, extra)
	if err != nil {
		tb.Fatalf("redistest: cannot restart redis-server on %s: %v", s.Addr, err)
	}
	s.cmd, s.Dir = ns.cmd, ns.Dir
}
