package pebblefail

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestGuard(t *testing.T) {
	var buf bytes.Buffer
	l := Logger{Name: "test", Log: slog.New(slog.NewTextHandler(&buf, nil))}
	var g Guard
	if err := g.Do(func() error { return nil }); err != nil {
		t.Fatalf("Do(ok) = %v", err)
	}
	plain := errors.New("plain")
	if err := g.Do(func() error { return plain }); err != plain {
		t.Fatalf("Do(plain error) = %v; want it as it is", err)
	}
	if g.Err() != nil {
		t.Fatal("a plain error failed the database")
	}
	err := g.Do(func() error { l.Fatalf("wal: %s", "disk gone"); return nil })
	if err == nil || err.Error() != "wal: disk gone" {
		t.Fatalf("Do(fatal) = %v; want the fatal message", err)
	}
	ran := false
	err = g.Do(func() error { ran = true; return nil })
	if ran || !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "disk gone") {
		t.Fatalf("Do after a fatal error: ran %v, err %v; want ErrFailed without running", ran, err)
	}
	if !strings.Contains(buf.String(), "disk gone") || !strings.Contains(buf.String(), "db=test") {
		t.Fatalf("log = %q; want the fatal error with the db name", buf.String())
	}
	defer func() {
		if r := recover(); r != "other" {
			t.Fatalf("recovered %v; want the other panic to go on", r)
		}
	}()
	var g2 Guard
	_ = g2.Do(func() error { panic("other") })
}
