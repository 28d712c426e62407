// Package invtest is the conformance suite every inventory backend passes:
// Run checks each Store method and error, Stress races many goroutines and
// checks exact totals (laws 1, 2 and 6), Model compares random operation
// sequences against a reference model and checks concurrent histories for
// linearizability with porcupine.
//
// A backend's test calls them with a Factory:
//
//	func TestConformance(t *testing.T) {
//		f := func(t testing.TB, o inventory.Options) inventory.Store { ... }
//		invtest.Run(t, f)
//		invtest.Stress(t, f)
//		invtest.Model(t, f)
//	}
package invtest
