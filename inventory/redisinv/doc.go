// Package redisinv is the Redis backend of inventory.Store, for many
// gateway nodes sharing one set of counters.
//
// Every mutating operation is one Lua script, loaded once and run with
// EVALSHA through rueidis (auto-pipelined), so it is atomic on the server:
// a reserve checks every line, decrements availability, counts the user's
// units and records the reservation in one step, and two nodes racing for
// the last unit cannot both win. Time is never read on the server: the
// caller's clock (inventory.Options.Now, in milliseconds) is passed to the
// scripts, so every node and every backend agree on what has expired.
//
// # Keys
//
// All keys of one tag (inventory.Tag: the part of a pool or reservation id
// before the first ':') share the Redis hash tag {tag}, so they live in one
// Redis Cluster slot and the same scripts run on a single server or a
// cluster. With prefix P (Options.Prefix) and tag T:
//
//	P:{T}:p:<pool>   hash  pool counters (free held sold onhand seq)
//	P:{T}:u:<pool>   hash  user -> units in held and paid reservations
//	P:{T}:r:<id>     hash  reservation record
//	P:{T}:x          zset  held reservations by deadline (ms), for Expire
//	P:{T}:s1|s2|s3   zset  reservations by state (score 0, ordered by id)
//	P:tags           zset  registry of tags (score 0), for Expire and Scan
//
// Free is Available minus Short, as in the memory backend: a feed that
// removes more than is available drives it below zero, and units coming
// back pay the short first. Supplied is derived, so Supplied == Available +
// Held + Sold holds in every reply.
//
// A tag that is empty, contains '{' or '}' or starts with '~' is written
// as '~' followed by its hex encoding inside the braces, so every tag maps
// to one non-empty, brace-free hash tag. Scripts derive the keys of lines
// from the reservation's tag; they never touch a key of another slot.
//
// # Durability
//
// A nil error means the script ran and its effects were written by the
// server: the answer is exactly as durable as the server's persistence.
// With appendonly yes and appendfsync always (what internal/redistest
// runs, and what production must configure to keep DESIGN.md's law 3 for
// the redis backend), Redis fsyncs the append-only file before it replies,
// so a yes survives a crash of the server. With appendfsync everysec a
// crash may lose up to about a second of acknowledged reservations; with
// persistence off, everything. Replication to replicas is asynchronous:
// a failover may lose acknowledged writes unless WAIT is used, which this
// backend does not do.
//
// A connection error, a timeout or an error reply that is not one of the
// inventory answers (OOM, MISCONF, READONLY, LOADING, ...) is returned
// wrapping inventory.ErrUnavailable. A write whose reply was lost may still
// have been applied; every operation is safe to retry (Reserve is
// idempotent by id, the state changes answer the same on a second call).
package redisinv
