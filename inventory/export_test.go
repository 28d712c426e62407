package inventory

// SyncGaps returns how many WAL syncs of s waited for the sync gap.
func SyncGaps(s *Pebble) int64 { return s.syncGaps.Load() }
