// Package bench runs Surge's standard benchmark scenarios and reports each
// next to a floor measured in the same run on the same machine (DESIGN.md):
// a bare fasthttp handler for HTTP routes, raw synced Pebble batches for
// durable reservations, raw EVALSHA through rueidis for Redis. Absolute
// numbers vary between runs on shared machines; the ratios are the result.
//
// Results.Markdown renders the whole BENCHMARKS.md page from one run: the
// in-process scenarios (Run), the packages' testing.B benchmarks
// (RunPackages) and the external wrk measurement against `surge serve` in
// its own process (RunExternal), with one summary table against the
// issue's targets. Whatever did not run shows as "not run".
package bench
