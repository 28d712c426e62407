package records_test

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"sync"
	"testing"

	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/engine/records/recordstest"
)

func setMembers(t *testing.T, s records.TaggedSets, tag, set string) []string {
	t.Helper()
	var ms []string
	if err := s.ScanSet(context.Background(), tag, set, func(m string, v []byte) error {
		if string(v) != "v-"+m {
			t.Errorf("member %q has value %q; want %q", m, v, "v-"+m)
		}
		ms = append(ms, m)
		return nil
	}); err != nil {
		t.Fatalf("ScanSet: %v", err)
	}
	sort.Strings(ms)
	return ms
}

// TestRecordsSets: a set adds each member once, counts exactly under
// concurrent adds (never past its bound), refuses new members once closed
// (old ones are still found), lists every member once, keeps sets of
// different tags and names apart, and survives a reopen.
func TestRecordsSets(t *testing.T) {
	recordstest.ForEach(t, recordstest.Backends(true), func(t *testing.T, rec records.Records, reopen func() records.Records) {
		ctx := context.Background()
		s := records.SetsOf(rec)
		if n, closed, err := s.SetInfo(ctx, "s1", "reg.f1"); err != nil || n != 0 || closed {
			t.Fatalf("SetInfo(new) = %d, %v, %v", n, closed, err)
		}
		if a, err := s.AddToSet(ctx, "s1", "reg.f1", "u/1", []byte("v-u/1"), 3); err != nil || !a.Added || a.N != 1 {
			t.Fatalf("AddToSet = %+v, %v; want added, 1", a, err)
		}
		if a, err := s.AddToSet(ctx, "s1", "reg.f1", "u/1", []byte("v-other"), 3); err != nil || a.Added || a.N != 1 {
			t.Fatalf("AddToSet again = %+v, %v; want not added, 1", a, err)
		}
		if v, ok, err := s.SetMember(ctx, "s1", "reg.f1", "u/1"); err != nil || !ok || string(v) != "v-u/1" {
			t.Fatalf("SetMember = %q, %v, %v; want the first value", v, ok, err)
		}
		// Another tag and another set are other sets.
		if a, err := s.AddToSet(ctx, "s2", "reg.f1", "u/1", []byte("v-u/1"), 3); err != nil || !a.Added || a.N != 1 {
			t.Fatalf("AddToSet(other tag) = %+v, %v", a, err)
		}
		if _, ok, err := s.SetMember(ctx, "s1", "reg.f2", "u/1"); err != nil || ok {
			t.Fatalf("SetMember(other set) = %v, %v; want absent", ok, err)
		}

		// 64 goroutines add 200 members (each twice) to a set bounded at 150.
		var wg sync.WaitGroup
		var mu sync.Mutex
		added, full := 0, 0
		for g := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 200 {
					if i%64 != g%64 && (i+1)%64 != g%64 {
						continue
					}
					m := "m" + strconv.Itoa(i)
					a, err := s.AddToSet(ctx, "s1", "big", m, []byte("v-"+m), 150)
					mu.Lock()
					switch {
					case errors.Is(err, records.ErrSetFull):
						full++
					case err != nil:
						t.Errorf("AddToSet(%s): %v", m, err)
					case a.Added:
						added++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if added != 150 || full < 50 {
			t.Fatalf("added %d, refused full %d; want 150 added and at least 50 refused", added, full)
		}
		if ms := setMembers(t, s, "s1", "big"); len(ms) != 150 {
			t.Fatalf("ScanSet lists %d members; want 150", len(ms))
		}
		if n, _, err := s.SetInfo(ctx, "s1", "big"); err != nil || n != 150 {
			t.Fatalf("SetInfo = %d, %v; want 150", n, err)
		}

		if n, err := s.CloseSet(ctx, "s1", "reg.f1"); err != nil || n != 1 {
			t.Fatalf("CloseSet = %d, %v; want 1", n, err)
		}
		if _, err := s.AddToSet(ctx, "s1", "reg.f1", "u2", []byte("v-u2"), 3); !errors.Is(err, records.ErrSetClosed) {
			t.Fatalf("AddToSet(closed) = %v; want ErrSetClosed", err)
		}
		if a, err := s.AddToSet(ctx, "s1", "reg.f1", "u/1", []byte("v-u/1"), 3); err != nil || a.Added {
			t.Fatalf("AddToSet(closed, member) = %+v, %v; want no error, not added", a, err)
		}
		if n, closed, err := s.SetInfo(ctx, "s1", "reg.f1"); err != nil || n != 1 || !closed {
			t.Fatalf("SetInfo(closed) = %d, %v, %v", n, closed, err)
		}
		for _, bad := range [][3]string{{"", "x", "m"}, {"s{1", "x", "m"}, {"s1", "a/b", "m"}, {"s1", "", "m"}, {"s1", "x", ""}} {
			if _, err := s.AddToSet(ctx, bad[0], bad[1], bad[2], nil, 3); !errors.Is(err, records.ErrInvalid) {
				t.Fatalf("AddToSet(%q): %v; want ErrInvalid", bad, err)
			}
		}
		if reopen != nil {
			s = records.SetsOf(reopen())
			if n, closed, err := s.SetInfo(ctx, "s1", "reg.f1"); err != nil || n != 1 || !closed {
				t.Fatalf("SetInfo after reopening = %d, %v, %v; want 1, closed", n, closed, err)
			}
			if n, _, err := s.SetInfo(ctx, "s1", "big"); err != nil || n != 150 {
				t.Fatalf("SetInfo(big) after reopening = %d, %v; want 150", n, err)
			}
			if _, err := s.AddToSet(ctx, "s1", "big", "late", []byte("v-late"), 150); !errors.Is(err, records.ErrSetFull) {
				t.Fatalf("AddToSet(full) after reopening = %v; want ErrSetFull", err)
			}
		}
	})
}
