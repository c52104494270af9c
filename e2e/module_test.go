package e2e_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/store/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
)

// The module deployment (issue 20): the same cases as through the sidecar,
// with the decision inside Envoy (envoy/envoy-module.yaml loading
// libextauthz.so) and the sidecar serving only the pages. Like a second
// replica, the module shares a redis-server and the signing_key with it.

// moduleConfigPath is the extauthz config path envoy-module.yaml names; the
// tests put the sidecar's config file there.
const moduleConfigPath = "/etc/extauthz/config.yaml"

var (
	moduleOnce sync.Once
	moduleDir  string
	moduleErr  error
)

// moduleSearchPath is the directory holding libextauthz.so:
// $EXTAUTHZ_MODULE_DIR when set (.ci/run builds the library there before the
// tests), else built once per test binary.
func moduleSearchPath(t *testing.T) string {
	t.Helper()
	moduleOnce.Do(func() {
		if dir := os.Getenv("EXTAUTHZ_MODULE_DIR"); dir != "" {
			moduleDir = dir
			_, moduleErr = os.Stat(filepath.Join(dir, "libextauthz.so"))
			return
		}
		if moduleDir, moduleErr = os.MkdirTemp("", "extauthz-module"); moduleErr != nil {
			return
		}
		build := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(moduleDir, "libextauthz.so"),
			"github.com/extauthz/extauthz/cmd/extauthz-module")
		build.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := build.CombinedOutput(); err != nil {
			moduleErr = fmt.Errorf("building the module: %w\n%s", err, out)
		}
	})
	if moduleErr != nil {
		t.Fatal(moduleErr)
	}
	return moduleDir
}

// moduleEnv is Envoy's environment for envoy-module.yaml.
func moduleEnv(t *testing.T) []string {
	return []string{"ENVOY_DYNAMIC_MODULES_SEARCH_PATH=" + moduleSearchPath(t)}
}

// writeModuleConfig is envoy/envoy-module.yaml with its extauthz config path
// replaced by config, and headers with underscores let through when
// allowUnderscores; it fails when a line it must change is not there.
func writeModuleConfig(t *testing.T, config string, allowUnderscores bool) string {
	t.Helper()
	root, err := envoytest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "envoy", "envoy-module.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(src)
	if strings.Count(cfg, "config: "+moduleConfigPath) != 1 {
		t.Fatalf("envoy-module.yaml no longer names %s once", moduleConfigPath)
	}
	cfg = strings.Replace(cfg, "config: "+moduleConfigPath, "config: "+config, 1)
	if allowUnderscores {
		const reject = "headers_with_underscores_action: REJECT_REQUEST"
		if !strings.Contains(cfg, reject) {
			t.Fatalf("envoy-module.yaml no longer says %q", reject)
		}
		cfg = strings.Replace(cfg, reject, "headers_with_underscores_action: ALLOW", 1)
	}
	out := filepath.Join(t.TempDir(), "envoy-module.yaml")
	if err := os.WriteFile(out, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// storeConfig is the config lines that share a redis-server, as the module
// requires.
func storeConfig(redis *redistest.Server) string {
	return "databroker_storage_type: redis\ndatabroker_storage_connection_string: " + redis.URL() + "\n"
}

// startModule puts an Envoy running envoy-module.yaml on the stack's config
// in front of it.
func (s *stack) startModule(t *testing.T, p ports, allowUnderscores bool) {
	t.Helper()
	s.envoy = envoytest.Start(t, envoytest.Options{ConfigPath: writeModuleConfig(t, s.config, allowUnderscores),
		ListenPort: p.listen, GRPCPort: p.grpc, HTTPPort: p.http, UpstreamPort: p.upstream, Env: moduleEnv(t)})
	s.module = true
}

// startModuleStack is startStack with the decision in Envoy: the demo config
// on a redis-server, the sidecar serving its pages, Envoy the module.
func startModuleStack(t *testing.T) *stack {
	t.Helper()
	envoytest.RequireBinary(t)
	redis := redistest.Start(t)
	p := freePorts(t)
	config, secret := testkit.DemoConfig(t, p.listen, p.grpc, p.http, storeConfig(redis))
	s := startSidecar(t, config, secret, p)
	s.startModule(t, p, false)
	return s
}

// deployments are the two ways to run extauthz in front of Envoy; the
// end-to-end cases run through both and expect the same answers.
var deployments = []struct {
	name  string
	start func(t *testing.T) *stack
}{
	{"the sidecar over ext_authz", startStack},
	{"the module inside Envoy", startModuleStack},
}

// TestModuleFailsClosed: what the module does when it cannot decide.
func TestModuleFailsClosed(t *testing.T) {
	envoytest.RequireBinary(t)
	p := freePorts(t)
	t.Run("a module whose store was never read answers 503 and lets nothing through", func(t *testing.T) {
		// Nothing listens on the store's port.
		config, secret := testkit.DemoConfig(t, p.listen, p.grpc, p.http,
			fmt.Sprintf("databroker_storage_type: redis\ndatabroker_storage_connection_string: redis://127.0.0.1:%d/0\n", envoytest.FreePort(t)))
		startEcho(t, p.upstream)
		s := &stack{secret: secret, config: testkit.WriteFile(t, "config.yaml", config)}
		s.startModule(t, p, false)
		bob := s.mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"},
			RegisteredClaims: jwt.RegisteredClaims{Subject: "u-bob"}})
		for _, host := range []string{"app.localhost", "public.localhost"} {
			resp, body := s.do(t, "GET", host, "/headers", "Authorization: Pomerium "+bob)
			if resp.StatusCode != 503 || strings.Contains(body, `"method"`) {
				t.Errorf("%s: %d %s, want 503 and no upstream answer", host, resp.StatusCode, body)
			}
		}
		if log := s.envoy.Stderr(); !strings.Contains(log, "the shared store was not read in full yet") {
			t.Errorf("the module did not say why it answers 503:\n%s", log)
		}
	})

	t.Run("a config the module cannot serve keeps Envoy from starting, and says why", func(t *testing.T) {
		// The demo config as is: a memory store, which the sidecar alone can serve.
		config, _ := testkit.DemoConfig(t, p.listen, p.grpc, p.http, "")
		path := testkit.WriteFile(t, "config.yaml", config)
		_, err := envoytest.Launch(envoytest.Options{ConfigPath: writeModuleConfig(t, path, false), Env: moduleEnv(t)})
		if err == nil {
			t.Fatal("Envoy started with a module that cannot serve its config")
		}
		if !strings.Contains(err.Error(), "databroker_storage_type must be redis") {
			t.Errorf("Envoy's log does not say why:\n%v", err)
		}
	})
}

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}
