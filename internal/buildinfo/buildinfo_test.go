package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	f := func(bi *debug.BuildInfo, ld string, want Info) {
		t.Helper()
		ldCommit := ""
		ld, ldCommit, _ = strings.Cut(ld, "@")
		if got := fromBuildInfo(bi, ld, ldCommit); got != want {
			t.Errorf("fromBuildInfo(%v, %q, %q) = %+v; want %+v", bi, ld, ldCommit, got, want)
		}
	}
	stamped := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/surge-retail/surge", Version: "v0.0.0-20260101000000-0123456789ab"},
		Settings:  []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.modified", Value: "false"}},
	}
	f(stamped, "", Info{Version: "v0.0.0-20260101000000-0123456789ab", GoVersion: "go1.26.0", Commit: "0123456789abcdef"})
	f(stamped, "v1.2.3", Info{Version: "v1.2.3", GoVersion: "go1.26.0", Commit: "0123456789abcdef"})
	dirty := *stamped
	dirty.Settings = []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"}}
	f(&dirty, "", Info{Version: stamped.Main.Version, GoVersion: "go1.26.0", Commit: "abc-dirty"})
	// vcs.revision wins over the link-time commit.
	f(stamped, "v1.2.3@feed", Info{Version: "v1.2.3", GoVersion: "go1.26.0", Commit: "0123456789abcdef"})
	unstamped := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}
	f(unstamped, "", Info{Version: "(devel)", GoVersion: "go1.26.0", Commit: "unknown"})
	f(unstamped, "v1.2.3-4-gfeed@feed-dirty", Info{Version: "v1.2.3-4-gfeed", GoVersion: "go1.26.0", Commit: "feed-dirty"})
	if got := fromBuildInfo(nil, "", ""); got.Version != "unknown" || got.Commit != "unknown" || !strings.HasPrefix(got.GoVersion, "go") {
		t.Errorf("fromBuildInfo(nil) = %+v", got)
	}
}

func TestGet(t *testing.T) {
	in := Get()
	if in.Version == "" || in.Commit == "" || !strings.HasPrefix(in.GoVersion, "go") {
		t.Errorf("Get() = %+v; want every field set", in)
	}
	if s := in.String(); !strings.HasPrefix(s, "surge "+in.Version+" (commit "+in.Commit) {
		t.Errorf("String() = %q", s)
	}
}
