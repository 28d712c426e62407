//go:build !amd64

package inventory

import "unsafe"

// prefetchw is a no-op where no prefetch instruction is wired up (see
// prefetch_amd64.s).
func prefetchw(p unsafe.Pointer) {}
