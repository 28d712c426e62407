package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDrawCmd: `surge draw` re-runs a draw from a seed over a plain list
// and over the admin's CSV export alike, with the winners of the
// engine's draw (pinned in engine.TestDrawReproducible).
func TestDrawCmd(t *testing.T) {
	run := func(in string, args ...string) (string, error) {
		t.Helper()
		cmd := newDrawCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetIn(strings.NewReader(in))
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), err
	}
	var list, csv strings.Builder
	csv.WriteString("\ufeffuser_id,registered_at,drawn\n")
	for i := range 20 {
		id := "u" + string(rune('0'+i/10)) + string(rune('0'+i%10))
		list.WriteString(id + "\n")
		csv.WriteString(id + ",2026-11-11T20:00:00Z,\n")
	}
	want := "u14\nu02\nu01\nu03\nu18\n"
	for name, in := range map[string]string{"list": list.String(), "csv": csv.String()} {
		got, err := run(in, "--seed", "surge-draw-2026", "--quantity", "5")
		if err != nil || got != want {
			t.Errorf("surge draw < %s = %q, %v; want %q", name, got, err, want)
		}
	}
	got, err := run(list.String(), "--seed", "surge-draw-2026", "--quantity", "1", "--digests")
	if err != nil || got != "0ae7246f923e5bb1748b7159bdf53311d368bd679c4e428bb38b04a0766e867d u14\n" {
		t.Errorf("surge draw --digests = %q, %v", got, err)
	}
	if got, err := run(list.String(), "--seed", "s"); err != nil || strings.Count(got, "\n") != 20 {
		t.Errorf("surge draw without --quantity printed %d lines, %v; want every registrant", strings.Count(got, "\n"), err)
	}
	if _, err := run(list.String()); err == nil {
		t.Error("surge draw without --seed: no error")
	}
	if _, err := run(list.String(), "--seed", "s", "--quantity", "-1"); err == nil {
		t.Error("surge draw --quantity -1: no error")
	}
}
