// Package inventory keeps stock pools and reservations over three backends
// with one semantics: memory (atomic counters), pebble (the embedded,
// durable default) and redis (many gateway nodes, one Lua script per
// operation). The laws it keeps are DESIGN.md's: no oversell, no stuck stock,
// yes means durable, limits hold, the feed is ordered and idempotent.
//
// The conformance suite that every backend passes lives in invtest.
//
// # Semantics shared by every backend
//
// Inputs are checked by ReserveRequest.Validate, ValidID and
// ValidReservationID; Reserve's errors come in the order documented in
// validate.go (invalid, id reuse, unknown pool, sold out, limit). Times are
// Unix milliseconds (ExpiryMs); a reservation is expired when its ExpiresAt
// is at or before now, for Confirm as for Expire. Reserve and Confirm read
// Options.Now, by default internal/coarseclock: whole milliseconds, at most
// a tick (more when the CPU is starved) behind time.Now and never ahead, so
// a hold may end that lag early by time.Now, never late.
//
// A pool keeps one signed "free" count: Available when positive, Short when
// negative. The feed moves it by the difference of on-hand levels, so a drop
// below what is held or sold shows as Short and is paid back first by later
// increases, releases, refunds and moves in. Supplied is derived:
// Available+Held+Sold. Reserving needs free >= quantity, so held+sold never
// exceed what the pool was given (law 1).
//
// # Transfers
//
// Send and Receive move units between pools of different tags (the
// engine's stock buckets) in two steps, each atomic on its own side and
// recorded there as a running total per peer pool: sent on the source,
// received on the destination. Receive is idempotent, so a transfer cut
// between the steps is completed by anyone who reads the source's Ledger
// (transfer.go).
//
// # Backends here
//
// Memory: a CAS on the pool's free counter is the whole reserve decision
// (no lock per pool); multi-line reserves take pools in id order and roll
// back; per-user counts are atomics dropped at zero, found without a lock
// in sharded open-addressing tables (about 60 bytes a user); reservations are pointer-free records in shards (8 a processor,
// 16 to 128), each with an open-addressing index, an arena for ids, users
// and meta, an expiry heap and a purge heap. A reserve never loads back the
// record it writes (its line is usually not in cache): what publishing and
// queueing need, newRecord hands over.
//
// Pebble: Memory in front, every change committed to Pebble with Sync
// before it is acknowledged; Pebble's group commit shares fsyncs between
// concurrent callers. Units leaving a pool are taken in memory first and
// rolled back if the commit fails; units coming back are committed first.
// Open rebuilds everything from the stored pools and reservations. After a
// failed commit the store refuses writes (ErrUnavailable) until reopened.
//
// Redis (package redisinv): one Lua script per operation, every key of a tag
// in one Cluster slot; concurrent reserves of one tag are combined into one
// script call (group commit).
//
// # Retention
//
// Every backend keeps a reservation until it is forgotten: Scan and
// Reservation read released ones too. Forget drops one released
// reservation; Purge drops released ones whose deadline is old enough
// without scanning (the engine's sweeper calls it with its retention
// window). Paid reservations are never dropped: they count toward per-user
// limits and back orders. Context arguments are accepted for the
// interface; memory and pebble do not block on anything but disk.
//
// ClosePool ends a finished pool's per-user state: once nothing in it is
// held, the pool is marked closed (durably: Pebble's pool record, Redis's
// pool hash) and reserves nothing from then on, and its per-user counts
// are dropped (memory's user table, Redis's counts hash; Pebble derives
// counts from reservations on open and skips a closed pool's). Paid
// reservations stay; Confirm, Release, Refund, moves and the feed work as
// before.
package inventory
