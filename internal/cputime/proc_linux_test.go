package cputime

import (
	"os"
	"testing"
	"time"
)

// TestPIDSelf: this process's CPU time read from /proc grows when it
// spins, and agrees with getrusage's within /proc's 10 ms steps (plus
// the time between the two readings).
func TestPIDSelf(t *testing.T) {
	p0, ok := PID(os.Getpid())
	if !ok {
		t.Fatal("PID(self) ok = false")
	}
	deadline := time.Now().Add(5 * time.Second)
	p1 := p0
	for p1 < p0+50*time.Millisecond && time.Now().Before(deadline) {
		spin()
		p1, _ = PID(os.Getpid())
	}
	if p1 < p0+50*time.Millisecond {
		t.Fatalf("PID(self) = %v after spinning, %v before; want it to grow by 50ms", p1, p0)
	}
	r, _ := Process()
	p2, _ := PID(os.Getpid())
	if diff := r - p2; diff < -20*time.Millisecond || diff > 20*time.Millisecond {
		t.Errorf("getrusage %v, /proc %v: want them within 20ms", r, p2)
	}
}

// TestPIDGone: a process that does not exist cannot be read.
func TestPIDGone(t *testing.T) {
	if d, ok := PID(-1); ok {
		t.Errorf("PID(-1) = %v, true; want ok false", d)
	}
}

// TestParseStat: the command name may hold spaces and parentheses; the
// fields are counted from its last ')'. Short or malformed lines are
// refused.
func TestParseStat(t *testing.T) {
	line := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 3 0 100 1000 10 18446744073709551615\n"
	if d, ok := parseStat([]byte(line)); !ok || d != 2870*time.Millisecond {
		t.Errorf("parseStat = %v, %v; want 2.87s, true", d, ok)
	}
	for _, bad := range []string{"", "4242 (x) S 1 2 3", "4242 x S 1 4242 4242 0 -1 4194560 100 0 0 0 250 37", "4242 (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 2x5 37 0"} {
		if d, ok := parseStat([]byte(bad)); ok {
			t.Errorf("parseStat(%q) = %v, true; want ok false", bad, d)
		}
	}
}

// TestParseProcStat: busy is everything but idle and iowait, and steal
// counts as neither busy nor available.
func TestParseProcStat(t *testing.T) {
	data := "cpu  100 5 50 800 20 3 2 40 0 0\ncpu0 50 2 25 400 10 1 1 20 0 0\n"
	busy, all, ok := parseProcStat([]byte(data))
	if !ok || busy != 1600*time.Millisecond || all != 9800*time.Millisecond {
		t.Errorf("parseProcStat = %v, %v, %v; want 1.6s, 9.8s, true", busy, all, ok)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8", "cpu 1 2 3", "cpu 1 2 x 4 5 6 7 8"} {
		if _, _, ok := parseProcStat([]byte(bad)); ok {
			t.Errorf("parseProcStat(%q) ok = true; want false", bad)
		}
	}
}

// TestMachineAdvances: the machine's CPU time grows, busy within all.
func TestMachineAdvances(t *testing.T) {
	b0, a0, ok := Machine()
	if !ok {
		t.Fatal("Machine() ok = false")
	}
	deadline := time.Now().Add(5 * time.Second)
	b1, a1 := b0, a0
	for (b1 <= b0 || a1 <= a0) && time.Now().Before(deadline) {
		spin()
		b1, a1, _ = Machine()
	}
	if b1 <= b0 || a1 <= a0 || b1-b0 > a1-a0 {
		t.Errorf("Machine: busy %v→%v, all %v→%v; want both to grow, busy by no more than all", b0, b1, a0, a1)
	}
}
