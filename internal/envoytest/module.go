package envoytest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// ModuleName is the dynamic module envoy/envoy-module.yaml loads: Envoy looks
// for lib<name>.so in $ENVOY_DYNAMIC_MODULES_SEARCH_PATH.
const ModuleName = "extauthz"

// ModuleConfigPath is the extauthz config file envoy/envoy-module.yaml
// names in its filter_config; tests replace it with theirs.
const ModuleConfigPath = "/etc/extauthz/config.yaml"

var (
	moduleOnce sync.Once
	moduleDir  string
	moduleErr  error
)

// ModuleLibrary returns a directory holding libextauthz.so, for
// ENVOY_DYNAMIC_MODULES_SEARCH_PATH: $EXTAUTHZ_MODULE_DIR when set (.ci/run
// builds the library there before the tests), else one built once per
// process from cmd/extauthz-module (cgo and a C compiler are required). The
// built one stays in the system's temporary directory: Envoys started later
// in the process load it.
func ModuleLibrary() (string, error) {
	moduleOnce.Do(func() {
		if dir := os.Getenv("EXTAUTHZ_MODULE_DIR"); dir != "" {
			moduleDir = dir
			_, moduleErr = os.Stat(filepath.Join(dir, "lib"+ModuleName+".so"))
			return
		}
		if moduleDir, moduleErr = os.MkdirTemp("", "extauthz-module"); moduleErr != nil {
			return
		}
		build := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(moduleDir, "lib"+ModuleName+".so"),
			"github.com/extauthz/extauthz/cmd/extauthz-module")
		build.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := build.CombinedOutput(); err != nil {
			moduleErr = fmt.Errorf("building the extauthz module: %w\n%s", err, out)
		}
	})
	return moduleDir, moduleErr
}

// ModuleDir is ModuleLibrary for a test, which fails without it.
func ModuleDir(t testing.TB) string {
	t.Helper()
	dir, err := ModuleLibrary()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// ModuleEnv is the environment an Envoy running envoy-module.yaml needs.
func ModuleEnv(t testing.TB) []string {
	return []string{"ENVOY_DYNAMIC_MODULES_SEARCH_PATH=" + ModuleDir(t)}
}

// ModuleConfig is envoy/envoy-module.yaml with its extauthz config path
// replaced by config, then each old string of the pairs by its new one. A
// string to replace that is not there exactly once is an error, so a variant
// never silently runs the file as it is.
func ModuleConfig(config string, pairs ...string) ([]byte, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	src, err := os.ReadFile(filepath.Join(root, "envoy", "envoy-module.yaml"))
	if err != nil {
		return nil, err
	}
	cfg := string(src)
	pairs = append([]string{"config: " + ModuleConfigPath, "config: " + config}, pairs...)
	for i := 0; i+1 < len(pairs); i += 2 {
		if n := strings.Count(cfg, pairs[i]); n != 1 {
			return nil, fmt.Errorf("envoy-module.yaml says %q %d times, want once", pairs[i], n)
		}
		cfg = strings.Replace(cfg, pairs[i], pairs[i+1], 1)
	}
	return []byte(cfg), nil
}

// WriteModuleConfig writes ModuleConfig to a file of the test's and returns
// its path.
func WriteModuleConfig(t testing.TB, config string, pairs ...string) string {
	t.Helper()
	cfg, err := ModuleConfig(config, pairs...)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "envoy-module.yaml")
	if err := os.WriteFile(out, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}
