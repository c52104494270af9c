// Package buildinfo says which build of extauthz is running: the version a
// release stamped into the binary, else what the Go toolchain recorded.
//
// Release builds stamp it with the linker:
//
//	go build -ldflags "-X github.com/extauthz/extauthz/internal/buildinfo.version=v1.2.3" ./cmd/extauthz
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// version is set by release builds (see the package doc); empty otherwise.
var version string

// Version is the release version when stamped, else the module version Go
// recorded (set by `go install module@version`), else "devel" with the VCS
// revision when the build had one, so that a local build is still traceable.
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return "devel"
	}
	return "devel+" + rev + dirty
}

// GoVersion is the Go release the binary was built with.
func GoVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.GoVersion != "" {
		return bi.GoVersion
	}
	return runtime.Version()
}
