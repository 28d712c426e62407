//go:build !unix

package redistest

import "errors"

// errNoFreeze: without SIGSTOP there is no way to hold a process's
// connections open while it answers nothing.
var errNoFreeze = errors.New("redistest: cannot freeze a server on this platform (no SIGSTOP)")

// Freeze is not available on this platform; it returns an error.
func (s *Server) Freeze() error { return errNoFreeze }

// Thaw is not available on this platform; it returns an error.
func (s *Server) Thaw() error { return errNoFreeze }
