package engine

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestLoggerRequestID: a log line about a call names the call's request id.
func TestLoggerRequestID(t *testing.T) {
	var buf bytes.Buffer
	e := &Engine{opts: Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))}}
	e.logger(context.WithValue(context.Background(), RequestIDKey{}, "rid-42")).Error("engine: something")
	e.logger(context.Background()).Error("engine: background")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "request_id=rid-42") || strings.Contains(lines[1], "request_id") {
		t.Fatalf("log = %q; want the request id on the first line only", buf.String())
	}
}
