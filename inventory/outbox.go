package inventory

import (
	"context"
	"time"
)

// Outbox is implemented by stores whose confirmation can hand an entry
// (the engine's order) to a durable log in the same atomic step, so that
// no confirmed reservation is ever without its entry on the way, whatever
// process dies when (DESIGN.md, scale-out). Readers share one consumer
// group: an entry is delivered to one reader, acknowledged when done, and
// taken over from a reader that died (pending past an idle time). The
// Redis backend implements it with one stream per tag.
type Outbox interface {
	// ConfirmWith is Confirm that, when this call moves the reservation
	// from held to paid, appends entry to the outbox of the reservation's
	// tag in the same atomic step. Confirming a paid reservation again
	// appends nothing.
	ConfirmWith(ctx context.Context, id string, entry []byte) (Reservation, error)
	// ReadOutbox delivers at most max entries to consumer: first entries
	// another consumer has held unacknowledged for claimIdle or longer,
	// then new ones. An entry stays pending until AckOutbox.
	ReadOutbox(ctx context.Context, consumer string, max int, claimIdle time.Duration) ([]OutboxEntry, error)
	// AckOutbox marks entries done and removes them from the outbox.
	AckOutbox(ctx context.Context, entries []OutboxEntry) error
	// OutboxLag counts the entries not yet acknowledged and the age of the
	// oldest, over every tag.
	OutboxLag(ctx context.Context) (OutboxLag, error)
}

// OutboxEntry is one entry of an outbox.
type OutboxEntry struct {
	// Stream and ID locate the entry (for AckOutbox).
	Stream string
	ID     string
	// Data is what ConfirmWith appended.
	Data []byte
}

// OutboxLag is how far the readers are behind.
type OutboxLag struct {
	// Entries counts the entries not yet acknowledged (delivered or not).
	Entries int64
	// Oldest is when the oldest of them was appended (zero when none).
	Oldest time.Time
}

// OutboxEntryLenMax bounds an outbox entry, in bytes.
const OutboxEntryLenMax = 64 << 10
