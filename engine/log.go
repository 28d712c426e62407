package engine

import (
	"context"
	"log/slog"
)

// RequestIDKey is the context key of the request id: the engine's log
// lines about a call name ctx.Value(RequestIDKey{}) (a string) as
// request_id, as the gateway's lines do.
type RequestIDKey struct{}

// logger returns the engine's logger, with the request id of ctx when it
// carries one.
func (e *Engine) logger(ctx context.Context) *slog.Logger {
	if id, ok := ctx.Value(RequestIDKey{}).(string); ok && id != "" {
		return e.opts.Logger.With("request_id", id)
	}
	return e.opts.Logger
}
