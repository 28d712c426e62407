package engine

import (
	"context"
	"time"
)

// OrderWriterOptions configures an OrderWriter.
type OrderWriterOptions struct {
	// BatchMax is the most orders written in one store call. Default 256.
	BatchMax int
	// QueueMax bounds the orders submitted and not yet written. Default 65536.
	QueueMax int
	// Workers is the size of the ants pool writing batches. Default 4.
	Workers int
	// FlushInterval is how long a partial batch waits for more orders.
	// Default 5ms.
	FlushInterval time.Duration
	// RetryBackoff is the first wait after a failed batch; it doubles up to
	// 64 times itself. Default 10ms.
	RetryBackoff time.Duration
}

// OrderWriter writes orders to an OrderStore asynchronously in batches.
type OrderWriter struct {
	store OrderStore
}

// NewOrderWriter starts an OrderWriter over store.
func NewOrderWriter(store OrderStore, opts OrderWriterOptions) (*OrderWriter, error) {
	return &OrderWriter{store: store}, nil
}

// Submit queues o without blocking; false when the queue is full.
func (w *OrderWriter) Submit(o Order) bool { return false }

// Flush waits until every order submitted before the call is written.
func (w *OrderWriter) Flush(ctx context.Context) error { return nil }

// Written reports whether orderID is known to be written.
func (w *OrderWriter) Written(orderID string) bool { return false }

// Stats returns the writer's counters.
func (w *OrderWriter) Stats() OrderStats { return OrderStats{} }

// Close flushes, then stops the writer.
func (w *OrderWriter) Close(ctx context.Context) error { return nil }
