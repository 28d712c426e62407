package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestBenchOnlyUnknownGroup: `surge bench --only` with a group that does
// not exist fails at once with a usage error (exit 2) that names it.
func TestBenchOnlyUnknownGroup(t *testing.T) {
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&out)
	rootCmd.SetArgs([]string{"bench", "--only", "http,nope", "--duration", "1ms"})
	defer func() {
		rootCmd.SetArgs(nil)
		benchOpts.only = nil
	}()
	err := rootCmd.Execute()
	if err == nil {
		t.Fatal("surge bench --only http,nope: no error")
	}
	if code := exitCode(err); code != 2 {
		t.Errorf("exit status %d; want 2", code)
	}
	for _, want := range []string{`--only`, `unknown group "nope"`, "http, pebble, redis, latency, buckets, packages, wrk"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestBenchCommandLine: the page's command line can be pasted back into a
// shell: an argument with a space or a quote is quoted, others are not.
func TestBenchCommandLine(t *testing.T) {
	got := commandLine([]string{"bench", "--wrk-before-label", "2f267fc (before)", "--x", "it's", "--empty", ""})
	if want := `surge bench --wrk-before-label '2f267fc (before)' --x 'it'\''s' --empty ''`; got != want {
		t.Errorf("commandLine = %s; want %s", got, want)
	}
}
