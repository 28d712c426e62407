package engine

import (
	"context"
	"testing"

	"github.com/surge-retail/surge/engine/records"
	"github.com/surge-retail/surge/engine/records/recordstest"
)

// forEachRecords runs f as a subtest on every records backend.
func forEachRecords(t *testing.T, f func(t *testing.T, rec records.Records, reopen func() records.Records)) {
	t.Helper()
	recordstest.ForEach(t, recordstest.Backends(false), f)
}

// scanKeys returns the keys under prefix, in order.
func scanKeys(t *testing.T, rec records.Records, prefix string) []string {
	t.Helper()
	var keys []string
	err := rec.Scan(context.Background(), prefix, func(k string, v []byte) error {
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%q): %v", prefix, err)
	}
	return keys
}
