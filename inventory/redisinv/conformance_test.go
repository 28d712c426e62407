package redisinv_test

import (
	"testing"

	"github.com/surge-retail/surge/internal/redistest"
	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/invtest"
)

// factory returns an invtest.Factory over one redis-server: each call
// opens a Store under a fresh key prefix, so every store is empty without
// a server (or a FLUSHALL) per subtest.
func factory(t *testing.T) invtest.Factory {
	srv := redistest.Start(t)
	return func(tb testing.TB, o inventory.Options) inventory.Store {
		return open(tb, srv, "", o)
	}
}

func TestConformance(t *testing.T) {
	invtest.Run(t, factory(t))
}

func TestStress(t *testing.T) {
	invtest.Stress(t, factory(t))
}

func TestModel(t *testing.T) {
	invtest.Model(t, factory(t))
}
