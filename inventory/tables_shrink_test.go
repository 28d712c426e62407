package inventory

import (
	"runtime"
	"strconv"
	"sync"
	"testing"
)

// TestUserTableShrinksAfterCrowd: a crowd's per-user counts go when their
// units are released, and the shard tables that held them are rebuilt at
// their new size, so the heap comes back (bytes, after a collection).
// Users still counted keep their counts; concurrent acquires and releases
// while tables are rebuilt keep exact totals. Run under -race.
func TestUserTableShrinksAfterCrowd(t *testing.T) {
	const crowd, workers = 100_000, 8
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var ut userTable
	ut.init()
	p := &pool{idx: 3}
	before := heap()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < crowd; i += workers {
				if !ut.acquire(p, "crowd-user-"+strconv.Itoa(i), 1, 2) {
					t.Errorf("acquire of user %d refused", i)
				}
			}
		}()
	}
	wg.Wait()
	if !ut.acquire(p, "stays", 2, 2) || ut.acquire(p, "stays", 1, 2) {
		t.Fatal("the per-user limit does not hold")
	}
	peak := heap()
	if n := ut.len(); n != crowd+1 {
		t.Fatalf("counts %d; want %d", n, crowd+1)
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < crowd; i += workers {
				u := "crowd-user-" + strconv.Itoa(i)
				if i%10 == 0 { // some come back while tables shrink
					if !ut.acquire(p, u, 1, 2) {
						t.Errorf("second unit of user %d refused", i)
					}
					ut.release(p, u, 1)
				}
				ut.release(p, u, 1)
			}
		}()
	}
	wg.Wait()
	after := heap()
	if n := ut.len(); n != 1 {
		t.Fatalf("counts after the crowd left %d; want 1", n)
	}
	if got := ut.get(p, "stays"); got != 2 {
		t.Fatalf("count of the user who stays %d; want 2", got)
	}
	for i := range ut.shards {
		sh := &ut.shards[i]
		if l := len(sh.tab.Load().slots); l > userSlotsMin && sh.n*8 < l {
			t.Errorf("shard %d: %d counts in %d slots: its table was not rebuilt", i, sh.n, l)
		}
	}
	t.Logf("heap: before %d KiB, %d counts %d KiB, after %d KiB", before>>10, crowd, peak>>10, after>>10)
	if after > before+(peak-before)/10 {
		t.Errorf("heap after the crowd left %d KiB; want within a tenth of the crowd's %d KiB over %d KiB", after>>10, (peak-before)>>10, before>>10)
	}
}
