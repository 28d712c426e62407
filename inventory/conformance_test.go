package inventory_test

import (
	"testing"

	"github.com/surge-retail/surge/inventory"
	"github.com/surge-retail/surge/inventory/invtest"
)

// backends is the table of backends in this package; the redis backend runs
// the same suite from its own package.
var backends = []struct {
	name string
	f    invtest.Factory
}{
	{"memory", memoryFactory},
	{"pebble", pebbleFactory},
}

func memoryFactory(t testing.TB, o inventory.Options) inventory.Store {
	s := inventory.NewMemory(o)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func pebbleFactory(t testing.TB, o inventory.Options) inventory.Store {
	s, err := inventory.OpenPebble(t.TempDir(), inventory.PebbleOptions{Options: o})
	if err != nil {
		t.Fatalf("OpenPebble = %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { invtest.Run(t, b.f) })
	}
}

func TestStress(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { invtest.Stress(t, b.f) })
	}
}

func TestModel(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { invtest.Model(t, b.f) })
	}
}
