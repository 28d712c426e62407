package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// MachineInfo is where a run happened, as the page's heading shows it.
// Empty strings mean "could not be found out".
type MachineInfo struct {
	CPU    string // model name from /proc/cpuinfo
	Cores  int    // runtime.NumCPU
	RAMGiB float64
	Go     string // runtime.Version of the benchmark binary
	OSArch string
	Redis  string // `redis-server --version`, the version field
	Wrk    string // `wrk --version`, first line (only when wrk ran)
}

// Machine describes this machine.
func Machine() MachineInfo {
	m := MachineInfo{Cores: runtime.NumCPU(), Go: runtime.Version(), OSArch: runtime.GOOS + "/" + runtime.GOARCH}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "model name") {
				if i := strings.IndexByte(line, ':'); i >= 0 {
					m.CPU = strings.TrimSpace(line[i+1:])
				}
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			m.RAMGiB = float64(kb) / (1 << 20)
		}
	}
	m.Redis = redisVersion()
	return m
}

// redisVersion returns "7.0.15" from "Redis server v=7.0.15 sha=...".
func redisVersion() string {
	out := commandOutput("redis-server", "--version")
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			return v
		}
	}
	return ""
}

// commandOutput runs a short command and returns its first line, or "".
func commandOutput(name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

// String is the machine in one line.
func (m MachineInfo) String() string {
	cpu := m.CPU
	if cpu == "" {
		cpu = "unknown CPU"
	}
	redis := m.Redis
	if redis == "" {
		redis = "not found"
	}
	s := fmt.Sprintf("%d cores (%s), %.0f GiB RAM, %s, %s, redis-server %s", m.Cores, cpu, m.RAMGiB, m.Go, m.OSArch, redis)
	if m.Wrk != "" {
		s += ", " + m.Wrk
	}
	return s
}

// Commit describes the source tree at dir: the short commit, with
// "+uncommitted changes" when the work tree differs from it. "" if dir is
// not a git checkout.
func Commit(dir string) string {
	c := commandOutput("git", "-C", dir, "rev-parse", "--short", "HEAD")
	if c == "" || strings.Contains(c, " ") {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output()
	if err == nil && len(strings.TrimSpace(string(out))) > 0 {
		c += " +uncommitted changes"
	}
	return c
}
