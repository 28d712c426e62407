package inventory_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/surge-retail/surge/inventory"
)

// reuseThroughErrorfs makes an errorfs inject its faults into recycled
// WAL files too. errorfs.FS.ReuseForWrite hands back the underlying file
// unwrapped, so without this a store whose WAL was recycled (every store
// after the warm-up at open) would never see an injected WAL fault.
type reuseThroughErrorfs struct{ *errorfs.FS }

func (f reuseThroughErrorfs) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := f.Rename(oldname, newname); err != nil {
		return nil, err
	}
	return f.OpenReadWrite(newname, category)
}

// TestPebbleWALWarmup: OpenPebble leaves Pebble holding full-size WAL files
// to recycle (so that synced commits overwrite rather than append), the
// warm-up's filler is gone, and a store reopened after a crash right after
// the warm-up holds exactly what was acknowledged.
func TestPebbleWALWarmup(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := mustOpen(t, "db", inventory.PebbleOptions{FS: fs})
	ctx := context.Background()
	if err := s.CreatePool(ctx, "w:p", 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, inventory.ReserveRequest{ID: "w:r1", User: "u1", TTL: time.Hour,
		Lines: []inventory.Line{{Pool: "w:p", Quantity: 3}}}); err != nil {
		t.Fatal(err)
	}
	names, err := fs.List("db")
	if err != nil {
		t.Fatal(err)
	}
	big := 0
	for _, n := range names {
		if !strings.HasSuffix(n, ".log") {
			continue
		}
		st, err := fs.Stat(fs.PathJoin("db", n))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() >= 2<<20 {
			big++
		}
	}
	// Pebble keeps MemTableStopWritesThreshold+1 (3 by default) files to
	// recycle, and the active WAL is one taken from them.
	if big < 4 {
		t.Fatalf("WAL files of 2 MiB or more after the warm-up: %d (files %v); want 4", big, names)
	}
	want := state(t, s, "w:p")
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := mustOpen(t, "db", inventory.PebbleOptions{FS: crashed})
	defer r.Close()
	if got := state(t, r, "w:p"); got != want {
		t.Fatalf("state after crash and reopen:\n%s\nwant:\n%s", got, want)
	}
}
