package buildinfo

import (
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	t.Run("a stamped version is reported as stamped", func(t *testing.T) {
		old := version
		t.Cleanup(func() { version = old })
		version = "v9.8.7"
		if got := Version(); got != "v9.8.7" {
			t.Errorf("Version() = %q, want the stamped v9.8.7", got)
		}
	})
	t.Run("an unstamped build reports a version, never an empty string", func(t *testing.T) {
		got := Version()
		if got == "" || strings.Contains(got, "(devel)") {
			t.Errorf("Version() = %q", got)
		}
	})
	t.Run("the Go version names a Go release", func(t *testing.T) {
		if got := GoVersion(); !strings.HasPrefix(got, "go") {
			t.Errorf("GoVersion() = %q", got)
		}
	})
}
