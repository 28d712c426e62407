//go:build !linux

package inventory_test

import "time"

// threadCPUTime is not measured on this platform.
func threadCPUTime() time.Duration { return 0 }
