package pebblefail

import (
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// WALFaults is an errorfs.Injector for tests of this policy: while On, it
// fails every write, flush and sync of a WAL file (*.log) with
// errorfs.ErrInjected, as a failing disk would.
type WALFaults struct{ On atomic.Bool }

var _ errorfs.Injector = (*WALFaults)(nil)

func (w *WALFaults) String() string { return "wal-faults" }

// MaybeError implements errorfs.Injector.
func (w *WALFaults) MaybeError(op errorfs.Op) error {
	if !w.On.Load() || !strings.HasSuffix(op.Path, ".log") {
		return nil
	}
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo, errorfs.OpFileWrite, errorfs.OpFileFlush:
		return errorfs.ErrInjected
	}
	return nil
}
