//go:build !unix

package redistest

// Freeze is not available on this platform; it returns an error.
func (s *Server) Freeze() error { return ErrNoFreeze }

// Thaw is not available on this platform; it returns an error.
func (s *Server) Thaw() error { return ErrNoFreeze }
