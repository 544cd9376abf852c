// Package buildinfo says which build of Hookwire is running: its version,
// the commit it was built from, when, and with which Go. The release build
// (scripts/release.sh) sets the first three with -ldflags -X; a plain
// `go build` falls back to what the go tool stamped into the binary
// (vcs.revision, vcs.time, vcs.modified), and `go run`, which stamps
// nothing, says "dev" and "unknown" rather than inventing values.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by the release build:
//
//	-X github.com/hookwire/hookwire/internal/buildinfo.version=v1.2.3
//	-X github.com/hookwire/hookwire/internal/buildinfo.commit=<full sha>
//	-X github.com/hookwire/hookwire/internal/buildinfo.date=<RFC 3339 UTC>
var version, commit, date string

// Info describes the running binary.
type Info struct {
	Version   string `json:"version"`    // "v1.2.3" from a release; the module version or "dev" otherwise
	Commit    string `json:"commit"`     // full commit id, "-dirty" appended when built from a modified tree; "unknown" if not recorded
	BuildDate string `json:"build_date"` // RFC 3339 (UTC); the commit time for a plain go build; "unknown" if not recorded
	GoVersion string `json:"go_version"` // runtime.Version()
	Platform  string `json:"platform"`   // GOOS/GOARCH
}

// Get returns the build information: the -ldflags values where set, the go
// tool's VCS stamp where not.
func Get() Info {
	return resolve(version, commit, date, readBuildInfo())
}

func readBuildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

// resolve prefers the -X values and fills what is missing from bi.
func resolve(version, commit, date string, bi *debug.BuildInfo) Info {
	in := Info{Version: version, Commit: commit, BuildDate: date, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	var revision, vcsTime string
	modified := false
	if bi != nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				vcsTime = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
	}
	if in.Version == "" {
		in.Version = "dev"
	}
	if in.Commit == "" && revision != "" {
		in.Commit = revision
		if modified {
			in.Commit += "-dirty"
		}
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	if in.BuildDate == "" && vcsTime != "" {
		in.BuildDate = vcsTime
	}
	if in.BuildDate == "" {
		in.BuildDate = "unknown"
	}
	return in
}

// String is the text `hookwire version` prints.
func (in Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hookwire %s\n", in.Version)
	fmt.Fprintf(&b, "  commit:     %s\n", in.Commit)
	fmt.Fprintf(&b, "  build date: %s\n", in.BuildDate)
	fmt.Fprintf(&b, "  go:         %s %s\n", in.GoVersion, in.Platform)
	return b.String()
}

// LogAttrs are the key-value pairs of a startup log line.
func (in Info) LogAttrs() []any {
	return []any{"version", in.Version, "commit", in.Commit, "build_date", in.BuildDate, "go_version", in.GoVersion}
}
