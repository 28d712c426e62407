//go:build !linux

package cputime

import "time"

// PID is not measured on this platform: it returns ok=false.
func PID(pid int) (d time.Duration, ok bool) { return 0, false }

// Machine is not measured on this platform: it returns ok=false.
func Machine() (busy, all time.Duration, ok bool) { return 0, 0, false }
