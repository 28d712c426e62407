// Package bench runs Surge's standard benchmark scenarios and reports each
// next to a floor measured in the same run on the same machine (DESIGN.md):
// a bare fasthttp handler for HTTP routes, raw synced Pebble batches for
// durable reservations, raw EVALSHA through rueidis for Redis. Absolute
// numbers vary between runs on shared machines; the ratios are the result.
package bench
