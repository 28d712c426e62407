package engine

import (
	"testing"
	"time"
)

func TestNewTokenSortable(t *testing.T) {
	now := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	a, b := newToken(now), newToken(now.Add(time.Millisecond))
	if len(a) != 23 || a[:10] >= b[:10] {
		t.Fatalf("tokens %q, %q: not sortable by time", a, b)
	}
	if !validID(a) {
		t.Fatalf("token %q is not a valid id", a)
	}
}
