package inventory

import "unsafe"

// prefetchw asks the processor to bring the cache line at p into its cache
// for writing (PREFETCHW). A hint: it never faults, changes no memory and
// is not ordered with locked instructions, so it may be issued before a
// lock is taken.
//
//go:noescape
func prefetchw(p unsafe.Pointer)
