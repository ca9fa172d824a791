package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is basalt's release version, set when releasing with
// -ldflags "-X github.com/basaltos/basalt/cmd/basalt/cli.Version=v1.2.3";
// builds from a checkout say "dev".
var Version = "dev"

// Commit is the git commit, set by `make build` (-X ...cli.Commit=...);
// when empty, the one Go recorded (vcs.revision, with -buildvcs) is used.
var Commit = ""

// versionString is what `basalt --version` prints: the version, the commit
// the binary was built from (Go records it from git, with "+dirty" for
// uncommitted changes) and the Go version.
func versionString() string {
	commit, dirty := Commit, ""
	if bi, ok := debug.ReadBuildInfo(); ok && commit == "" {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision":
				commit = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = "+dirty"
			}
		}
	}
	if commit == "" {
		commit = "unknown"
	}
	return fmt.Sprintf("%s (commit %s%s, %s, %s/%s)", Version, commit, dirty, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
