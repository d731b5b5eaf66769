// Package version is the release of the module's binaries. `make build`
// stamps it from git (git describe --tags --always --dirty) with
//
//	go build -ldflags "-X github.com/gworkerd/gworkerd/internal/version.stamp=v1.2.3"
//
// A build without the stamp (go build, go install, go test) reports the
// module version the go command recorded, else Fallback with the VCS
// revision when the build recorded one.
package version

import "runtime/debug"

// Fallback is the version of a build that carries neither a stamp nor a
// module version.
const Fallback = "0.0.0-dev"

// stamp is set by the linker (-ldflags -X); it is never written at run
// time.
var stamp string

// String returns the version: the linker's stamp, else the module version
// of the build, else Fallback (plus "+<revision>" and ".dirty" when the
// build recorded them).
func String() string {
	if stamp != "" {
		return stamp
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Fallback
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	v, dirty := Fallback, ""
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			v += "+" + s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = ".dirty"
		}
	}
	return v + dirty
}
