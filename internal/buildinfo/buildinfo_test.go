package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	stamped := &debug.BuildInfo{
		Main: debug.Module{Path: "github.com/hookwire/hookwire", Version: "v0.0.0-20261207050000-76667d5abcde+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "76667d5abcdef0123456789abcdef0123456789a"},
			{Key: "vcs.time", Value: "2026-12-07T05:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	for _, tc := range []struct {
		name                  string
		version, commit, date string
		bi                    *debug.BuildInfo
		want                  Info
	}{
		{
			name:    "release build: ldflags win over the vcs stamp",
			version: "v1.2.3", commit: "1111111111111111111111111111111111111111", date: "2026-12-01T10:00:00Z",
			bi:   stamped,
			want: Info{Version: "v1.2.3", Commit: "1111111111111111111111111111111111111111", BuildDate: "2026-12-01T10:00:00Z"},
		},
		{
			name: "go build in a modified checkout",
			bi:   stamped,
			want: Info{Version: "v0.0.0-20261207050000-76667d5abcde+dirty", Commit: "76667d5abcdef0123456789abcdef0123456789a-dirty", BuildDate: "2026-12-07T05:00:00Z"},
		},
		{
			name: "go run: nothing stamped",
			bi:   &debug.BuildInfo{Main: debug.Module{Path: "github.com/hookwire/hookwire", Version: "(devel)"}},
			want: Info{Version: "dev", Commit: "unknown", BuildDate: "unknown"},
		},
		{
			name: "no build info at all",
			want: Info{Version: "dev", Commit: "unknown", BuildDate: "unknown"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := resolve(tc.version, tc.commit, tc.date, tc.bi)
			tc.want.GoVersion = runtime.Version()
			tc.want.Platform = runtime.GOOS + "/" + runtime.GOARCH
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
