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
// # Group commit
//
// Concurrent Reserve calls of one tag are combined by the client into one
// script call that decides up to Options.BatchMax (default 64) requests
// in order, each all or nothing on its own and with its own answer:
// exactly what the same calls would get one after the other. The script
// reads what it needs (records, pool counters, users' counts), decides
// every request in Lua, then writes with one command per kind of key
// (HSET pool, HSET users, MSET records, one expiry entry): it never errors out
// half-way, and a batch in which nothing is reserved writes nothing. One
// call and one AOF write then serve the whole batch; Lua's per-command
// overhead and the fsync are shared, as in Pebble's group commit.
//
// There is no goroutine besides the callers. Each tag maps to one of a
// fixed set of batchers, which allows at most Options.BatchesInFlight
// (default 4) batches in flight at once: a caller that finds a free slot
// leads a batch of the waiting calls of its tag (itself included); the
// others wait, and a leader whose batch is done hands its slot to the
// first waiting call, which then leads the next batch of what has
// gathered meanwhile. A repeated id is kept for a later batch, so it sees
// the first one's record. A batcher holds at most a bounded number of
// waiting calls; beyond that a caller runs its reservation alone. A batch
// runs until the latest deadline of its callers' contexts (without one if
// any has none) and is bounded by ConnTimeout in any case. A caller whose
// context ends while it waits returns an error wrapping
// inventory.ErrUnavailable: before its request was taken into a batch
// nothing is written; after, the batch may still write it, exactly like a
// single call whose reply was lost (Reserve is idempotent by id). A
// caller is only ever answered from the reply of the script that decided
// its request, so a yes has been written (and, with appendfsync always,
// fsynced) before it is returned.
//
// # Keys
//
// All keys of one tag (inventory.Tag: the part of a pool or reservation id
// before the first ':') share the Redis hash tag {tag}, so they live in one
// Redis Cluster slot and the same scripts run on a single server or a
// cluster. With prefix P (Options.Prefix) and tag T:
//
//	P:{T}:p:<pool>   hash    pool counters (free held sold onhand seq)
//	P:{T}:u:<pool>   hash    user -> units in held and paid reservations
//	P:{T}:r:<id>     string  reservation record (record.go)
//	P:{T}:x          zset    expiry index, for Expire: ids and batch entries " <n>"
//	P:{T}:b:<n>      list    the ids reserved by batch n (P:{T}:bseq counts batches)
//	P:{T}:s2|s3      zset    paid and released reservations (score 0, by id)
//	P:{T}:d          zset    released reservations by deadline, for Purge
//	P:tags           zset    registry of tags (score 0), for Expire, Scan and Purge
//
// A reserve writes the record, the pool and user counters and one entry
// of the expiry index per batch, nothing else: the batch's ids go to a
// list, entered in x once, scored by the batch's earliest deadline (a
// batch of one enters its id itself). Nothing is removed from a list on
// the way: Expire looks at every id of a due list once, releases the held
// and due ones, enters the held ones not yet due in x on their own
// (scored by their deadline) and drops the rest, a bounded number of ids
// per script call. Held reservations have no index by id: Scan of held
// ones gathers the held ids of x and its lists into a scratch sorted set
// of equal scores (Redis orders it by bytes) for the one call, which costs
// time in the size of the tag's expiry index; the engine never scans held
// ones. Release, expiry, late confirmation and refund add the id to d, so
// Purge finds what it may forget without scanning; Forget and Purge remove
// the record and its index entries (a stale id left in a batch list is
// dropped by Expire) and leave the counters alone (a released reservation
// no longer counts).
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
