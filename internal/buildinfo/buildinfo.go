// Package buildinfo says which build of Surge is running: its version, the
// Go toolchain that built it and the commit it was built from. `surge
// version` prints it and /metrics exports it as surge_build_info.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Version, when set at link time, wins over the version the Go toolchain
// records:
//
//	go build -ldflags "-X github.com/surge-retail/surge/internal/buildinfo.Version=v1.2.3" ./cmd/surge
var Version string

// Commit, when set at link time, is the commit for builds that recorded no
// vcs.revision (a build outside a checkout, or with -buildvcs=false): the
// Makefile's build sets both from git.
var Commit string

// Info describes a build.
type Info struct {
	// Version is the -ldflags Version, else the main module's version as
	// the toolchain recorded it (a pseudo-version from the VCS for a
	// `go build` in a checkout, "(devel)" without one), else "unknown".
	Version string
	// GoVersion is the toolchain's, e.g. "go1.26.0".
	GoVersion string
	// Commit is vcs.revision (the full hash), with "-dirty" when the
	// working tree had changes; else the -ldflags Commit; else "unknown"
	// (go test, or a build without VCS stamping).
	Commit string
}

// Get returns the running binary's Info.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(bi, Version, Commit)
}

// fromBuildInfo is Get over a given build info and link-time values.
func fromBuildInfo(bi *debug.BuildInfo, ldVersion, ldCommit string) Info {
	in := Info{Version: ldVersion, GoVersion: runtime.Version(), Commit: ldCommit}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	if bi == nil {
		if in.Version == "" {
			in.Version = "unknown"
		}
		return in
	}
	if bi.GoVersion != "" {
		in.GoVersion = bi.GoVersion
	}
	if in.Version == "" {
		in.Version = bi.Main.Version
	}
	if in.Version == "" {
		in.Version = "unknown"
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" {
		in.Commit = rev
		if dirty {
			in.Commit += "-dirty"
		}
	}
	return in
}

// String is the line `surge version` prints.
func (in Info) String() string {
	var b strings.Builder
	b.WriteString("surge ")
	b.WriteString(in.Version)
	b.WriteString(" (commit ")
	b.WriteString(in.Commit)
	b.WriteString(", ")
	b.WriteString(in.GoVersion)
	b.WriteString(")")
	return b.String()
}
