//go:build !race

package engine_test

import "testing"

// TestStorePageAllocs: serving a store page or a cached guide page does
// not allocate.
func TestStorePageAllocs(t *testing.T) {
	env := openEnv(t, testBackends()[0], nil)
	if _, err := env.e.StorePage("s1", "g1"); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"", "g1"} {
		n := testing.AllocsPerRun(1000, func() {
			benchSink, _ = env.e.StorePage("s1", g)
		})
		if n != 0 {
			t.Fatalf("StorePage(s1, %q) allocates %.1f times", g, n)
		}
	}
}
