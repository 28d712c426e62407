// Package inventory keeps stock pools and reservations over three backends
// with one semantics: memory (atomic counters), pebble (the embedded,
// durable default) and redis (many gateway nodes, one Lua script per
// operation). The laws it keeps are DESIGN.md's: no oversell, no stuck stock,
// yes means durable, limits hold, the feed is ordered and idempotent.
//
// The conformance suite that every backend passes lives in invtest.
package inventory
