// Package redistest starts a private redis-server for tests on a free
// loopback port and stops it when the test ends. It never touches the shared
// server on 6379.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ErrNoFreeze is Freeze's and Thaw's error on a platform without SIGSTOP:
// there is no other way to hold a process's connections open while it
// answers nothing. A test that needs a hung server skips on it.
var ErrNoFreeze = errors.New("redistest: cannot freeze a server on this platform (no SIGSTOP)")

// Server is a running redis-server owned by one test.
type Server struct {
	Addr string
	Dir  string
	cmd  *exec.Cmd
}

// Start starts redis-server on a free loopback port with its data in a
// temporary directory, with append-only persistence (appendfsync always) so
// that tests see the durability Surge documents. When redis-server is not
// on PATH the test is skipped loudly, or fails when SURGE_REQUIRE_REDIS=1.
// extra are additional "--name value" arguments.
func Start(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redistest: redis-server not found on PATH; Redis tests are NOT running (install redis-server, or run .ci/run)"
		if os.Getenv("SURGE_REQUIRE_REDIS") == "1" {
			tb.Fatal(msg + " and SURGE_REQUIRE_REDIS=1")
		}
		fmt.Fprintln(os.Stderr, "WARNING:", msg)
		tb.Skip(msg)
	}
	s, err := launch(bin, tb.TempDir(), extra)
	if err != nil {
		tb.Fatalf("redistest: could not start redis-server: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// launch starts bin on a free loopback port, trying a few ports in case
// another process takes the one just found free.
func launch(bin, dir string, extra []string) (*Server, error) {
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("cannot find a free port: %w", err)
		}
		s, err := start(bin, dir, port, extra)
		if err == nil {
			return s, nil
		}
		last = err
	}
	return nil, last
}

func start(bin, dir string, port int, extra []string) (*Server, error) {
	args := []string{
		"--bind", "127.0.0.1",
		"--port", fmt.Sprint(port),
		"--dir", dir,
		"--save", "",
		"--appendonly", "yes",
		"--appendfsync", "always",
		"--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log"),
	}
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ping(addr) == nil {
			return &Server{Addr: addr, Dir: dir, cmd: cmd}, nil
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
	return nil, fmt.Errorf("redis-server did not answer on %s: %s", addr, strings.TrimSpace(string(log)))
}

// PID is the server's process id (0 once stopped).
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop kills the server and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Launch starts redis-server from PATH on a free loopback port with its data
// in dir, for callers that are not tests (surge bench). The caller stops it.
func Launch(dir string, extra ...string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH: %w", err)
	}
	return launch(bin, dir, extra)
}
