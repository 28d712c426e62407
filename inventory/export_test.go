package inventory

import "fmt"

// SyncGaps returns how many WAL syncs of s waited for the sync gap.
func SyncGaps(s *Pebble) int64 { return s.syncGaps.Load() }

// UserCounts returns the per-user counts the store keeps in memory for
// pool (Memory or Pebble; -1 for an unknown pool).
func UserCounts(s Store, pool string) int {
	var m *Memory
	switch s := s.(type) {
	case *Memory:
		m = s
	case *Pebble:
		m = s.mem
	default:
		panic("BUG: UserCounts of a " + fmt.Sprintf("%T", s))
	}
	p := m.pools.get(pool)
	if p == nil {
		return -1
	}
	return m.users.poolLen(p)
}
