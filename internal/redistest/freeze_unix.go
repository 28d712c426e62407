//go:build unix

package redistest

import (
	"fmt"
	"syscall"
)

// Freeze stops the server's process (SIGSTOP): connections stay open and
// nothing is answered until Thaw. Stop (and the test's cleanup) still
// kill it.
func (s *Server) Freeze() error { return s.signal(syscall.SIGSTOP) }

// Thaw lets a frozen server go on (SIGCONT).
func (s *Server) Thaw() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	if s.cmd == nil || s.cmd.Process == nil {
		return fmt.Errorf("redistest: server not running")
	}
	return s.cmd.Process.Signal(sig)
}
