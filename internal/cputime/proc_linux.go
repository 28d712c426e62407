package cputime

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of /proc's CPU times: Linux's USER_HZ, 100 on every
// architecture Go builds for (the kernel's own tick rate is hidden
// behind it).
const userHZ = 100

func ticks(n uint64) time.Duration { return time.Duration(n) * (time.Second / userHZ) }

// PID returns the CPU time (user and system, all threads) that process pid
// has used so far, from /proc/PID/stat, in steps of 10 ms; ok is false if
// it cannot be read (no such process, or no /proc).
func PID(pid int) (d time.Duration, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return parseStat(data)
}

// parseStat reads utime and stime (fields 14 and 15) of a /proc/PID/stat
// line. The command name (field 2) is in parentheses and may hold spaces
// and parentheses itself, so the fields are counted from its last ')'.
func parseStat(data []byte) (time.Duration, bool) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(data[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return ticks(ut + st), true
}

// Machine returns, from the first line of /proc/stat, the CPU time all of
// the machine's CPUs have spent busy so far and the CPU time they have
// had in all (busy, idle and waiting for I/O), in steps of 10 ms; ok is
// false if it cannot be read. Between two readings, busy's growth over
// all's is the share of the machine that was busy.
func Machine() (busy, all time.Duration, ok bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	return parseProcStat(data)
}

// parseProcStat reads the aggregate "cpu" line: user nice system idle
// iowait irq softirq steal (guest time is already counted in user).
// Steal is time the hypervisor gave to someone else: neither busy here
// nor available, so it is left out of both.
func parseProcStat(data []byte) (busy, all time.Duration, ok bool) {
	line, _, _ := bytes.Cut(data, []byte{'\n'})
	f := bytes.Fields(line)
	if len(f) < 8 || string(f[0]) != "cpu" {
		return 0, 0, false
	}
	var v [7]uint64
	for i := range v {
		n, err := strconv.ParseUint(string(f[i+1]), 10, 64)
		if err != nil {
			return 0, 0, false
		}
		v[i] = n
	}
	idle := v[3] + v[4]
	total := v[0] + v[1] + v[2] + v[5] + v[6] + idle
	return ticks(total - idle), ticks(total), true
}
