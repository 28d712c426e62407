//go:build !unix

package cputime

import "time"

// Process is not measured on this platform: it returns ok=false.
func Process() (d time.Duration, ok bool) { return 0, false }
