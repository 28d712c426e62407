// Package records is the engine's own small durable key/value store:
// catalog, sales, deals, teams, payments, idempotency records and (through
// engine/orders' records store) orders. Three backends pass one conformance
// suite (recordstest): memory, Pebble (synced WAL, group commit) and Redis
// (shared by every node).
package records
