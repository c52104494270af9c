// Package compose_test checks the docker-compose example: without a Docker
// engine, that every file it references exists, the ports and host names of
// its Envoy config agree with the compose services, the sidecar's config and
// the demo provider's, its routes are the bundled envoy/envoy.yaml's, and
// Envoy accepts it; with one (up_test.go), that the stack comes up and works.
package compose_test

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/testkit"
)

const (
	composeFile = "docker-compose.yaml"
	envoyFile   = "envoy.yaml"
	sidecarDir  = "extauthz" // mounted as a directory, so that rename-saves reload
	sidecarFile = sidecarDir + "/config.yaml"
	idpFile     = "demo-idp.yaml"
)

type compose struct {
	Services map[string]service `yaml:"services"`
	Networks map[string]struct {
		Internal bool `yaml:"internal"`
	} `yaml:"networks"`
}

type service struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"` // "dir" or {context, dockerfile}
	Command     []string          `yaml:"command"`
	Entrypoint  any               `yaml:"entrypoint"`
	Volumes     []any             `yaml:"volumes"` // "src:dst[:mode]" or {type, source, target}
	Ports       []any             `yaml:"ports"`   // "host:container", "container", or {target, published}
	Expose      []any             `yaml:"expose"`
	Environment map[string]string `yaml:"environment"`
	EnvFile     any               `yaml:"env_file"`
	DependsOn   any               `yaml:"depends_on"` // [names] or {name: {condition}}
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Networks map[string]struct {
		Aliases []string `yaml:"aliases"`
	} `yaml:"networks"`
	Deploy struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
}

// networks lists the networks a service is on (Compose puts it on default
// when it names none).
func (s service) networks() []string {
	if len(s.Networks) == 0 {
		return []string{"default"}
	}
	var out []string
	for n := range s.Networks {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// dependsOn lists the services s depends on, in either syntax.
func (s service) dependsOn() []string {
	var out []string
	switch d := s.DependsOn.(type) {
	case []any:
		for _, v := range d {
			out = append(out, fmt.Sprint(v))
		}
	case map[string]any:
		for k := range d {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func loadCompose(t *testing.T) compose {
	t.Helper()
	var c compose
	decodeYAML(t, composeFile, &c)
	for _, name := range []string{"envoy", "extauthz", "echo", "idp", "redis"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("%s: no service %q", composeFile, name)
		}
	}
	return c
}

func decodeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// mount is one bind mount of a service: a local source and a container target.
type mount struct{ source, target string }

func (s service) mounts(t *testing.T) []mount {
	t.Helper()
	var out []mount
	for _, v := range s.Volumes {
		switch v := v.(type) {
		case string:
			parts := strings.Split(v, ":")
			if len(parts) < 2 {
				continue // an anonymous volume
			}
			out = append(out, mount{parts[0], parts[1]})
		case map[string]any:
			src, _ := v["source"].(string)
			dst, _ := v["target"].(string)
			out = append(out, mount{src, dst})
		default:
			t.Errorf("volume %v: unknown syntax", v)
		}
	}
	return out
}

func isLocalPath(p string) bool {
	return strings.HasPrefix(p, ".") || strings.HasPrefix(p, "/") || strings.HasPrefix(p, "~")
}

// containerPorts lists the container-side ports a service publishes or exposes.
func (s service) containerPorts(t *testing.T) map[int]bool {
	t.Helper()
	out := map[int]bool{}
	add := func(v any) {
		switch v := v.(type) {
		case int:
			out[v] = true
		case string:
			v, _, _ = strings.Cut(v, "/") // "8080/tcp"
			parts := strings.Split(v, ":")
			p, err := strconv.Atoi(parts[len(parts)-1])
			if err != nil {
				t.Errorf("port %q: %v", v, err)
				return
			}
			out[p] = true
		case map[string]any:
			if p, ok := v["target"].(int); ok {
				out[p] = true
			}
		}
	}
	for _, v := range s.Ports {
		add(v)
	}
	for _, v := range s.Expose {
		add(v)
	}
	return out
}

// publishedPorts maps host ports to container ports of a service; a port
// published on a host port Docker picks is not in it.
func (s service) publishedPorts(t *testing.T) map[int]int {
	t.Helper()
	out := map[int]int{}
	for _, v := range s.Ports {
		str, ok := v.(string)
		if !ok {
			continue
		}
		str, _, _ = strings.Cut(str, "/")
		parts := strings.Split(str, ":")
		if len(parts) < 2 {
			continue
		}
		if parts[len(parts)-2] == "" {
			continue // Docker picks the host port
		}
		host, err1 := strconv.Atoi(parts[len(parts)-2])
		ctr, err2 := strconv.Atoi(parts[len(parts)-1])
		if err1 != nil || err2 != nil {
			t.Errorf("port %q is not host:container", str)
			continue
		}
		out[host] = ctr
	}
	return out
}

func TestReferencedFilesExist(t *testing.T) {
	c := loadCompose(t)
	names := make([]string, 0, len(c.Services))
	for name := range c.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		s := c.Services[name]
		for _, m := range s.mounts(t) {
			if !isLocalPath(m.source) {
				continue // a named volume
			}
			if _, err := os.Stat(m.source); err != nil {
				t.Errorf("service %s mounts %s, which does not exist: %v", name, m.source, err)
			}
		}
		switch b := s.Build.(type) {
		case nil:
			if s.Image == "" {
				t.Errorf("service %s has neither image nor build", name)
			}
		case string:
			checkBuild(t, name, b, "Dockerfile")
		case map[string]any:
			ctx, _ := b["context"].(string)
			df, _ := b["dockerfile"].(string)
			if df == "" {
				df = "Dockerfile"
			}
			checkBuild(t, name, ctx, df)
		}
		switch ef := s.EnvFile.(type) {
		case string:
			if _, err := os.Stat(ef); err != nil {
				t.Errorf("service %s env_file: %v", name, err)
			}
		case []any:
			for _, f := range ef {
				if _, err := os.Stat(fmt.Sprint(f)); err != nil {
					t.Errorf("service %s env_file: %v", name, err)
				}
			}
		}
		for _, dep := range s.dependsOn() {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("service %s depends on unknown service %s", name, dep)
			}
		}
	}

	// A service's command that names a config file must have it mounted
	// there, or a local directory mounted above it.
	for name, flag := range map[string]string{"envoy": "-c", "extauthz": "--config", "idp": "--config"} {
		s := c.Services[name]
		target := argAfter(s.Command, flag)
		if target == "" {
			t.Errorf("service %s: command %v does not name its config after %s", name, s.Command, flag)
			continue
		}
		if !slices.ContainsFunc(s.mounts(t), func(m mount) bool {
			return isLocalPath(m.source) && (m.target == target || strings.HasPrefix(target, strings.TrimSuffix(m.target, "/")+"/"))
		}) {
			t.Errorf("service %s reads %s, but no local file or directory is mounted there", name, target)
		}
	}
}

// The sidecar's config is mounted as its directory: an editor saves by
// renaming a new file over the old one, which a single-file bind mount hides
// from the container (it keeps the old inode), so the change would never
// reload. The directory holds nothing else the sidecar does not need.
func TestSidecarConfigDirectoryIsMounted(t *testing.T) {
	s := loadCompose(t).Services["extauthz"]
	target := argAfter(s.Command, "--config")
	var found bool
	for _, m := range s.mounts(t) {
		if strings.HasSuffix(m.source, "/"+sidecarFile) || m.target == target {
			t.Errorf("service extauthz mounts the file %s at %s: mount its directory, so that rename-saves reload", m.source, m.target)
		}
		if filepath.Clean(m.source) == sidecarDir && m.target == filepath.Dir(target) {
			found = true
		}
	}
	if !found {
		t.Errorf("service extauthz does not mount ./%s at %s (volumes %v)", sidecarDir, filepath.Dir(target), s.Volumes)
	}
	entries, err := os.ReadDir(sidecarDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != filepath.Base(sidecarFile) {
			t.Errorf("%s/%s is mounted into the sidecar too: keep only %s there", sidecarDir, e.Name(), filepath.Base(sidecarFile))
		}
	}
}

// What the stack publishes is reachable from this machine only: a port
// published without an address listens on every interface, and the demo
// provider signs anyone in as anyone.
func TestPortsArePublishedOnLoopbackOnly(t *testing.T) {
	for name, s := range loadCompose(t).Services {
		for _, p := range s.Ports {
			str, ok := p.(string)
			if !ok || !strings.HasPrefix(str, "127.0.0.1:") || strings.Count(str, ":") != 2 {
				t.Errorf("service %s publishes %v: write it as \"127.0.0.1:HOST:CONTAINER\" (HOST empty: Docker picks one)", name, p)
			}
		}
	}
}

// Each long-running service of ours is checked by its own binary: the images
// are FROM scratch, with no shell or curl.
func TestHealthchecksUseTheBinaries(t *testing.T) {
	c := loadCompose(t)
	for name, want := range map[string][]string{
		"extauthz": {"CMD", "/bin/extauthz", "healthcheck"},
		"idp":      {"CMD", "/bin/demo-idp", "healthcheck"},
		"redis":    {"CMD", "redis-cli", "ping"},
	} {
		test := c.Services[name].Healthcheck.Test
		if len(test) < len(want) || !slices.Equal(test[:len(want)], want) {
			t.Errorf("service %s healthcheck %v, want %v ...", name, test, want)
		}
	}
	for _, dep := range [][2]string{{"envoy", "extauthz"}, {"extauthz", "redis"}} {
		deps, _ := c.Services[dep[0]].DependsOn.(map[string]any)
		if cond, _ := deps[dep[1]].(map[string]any); cond["condition"] != "service_healthy" {
			t.Errorf("service %s depends on %s %v; want condition: service_healthy, so no request meets a service still starting", dep[0], dep[1], deps[dep[1]])
		}
	}
}

// Two sidecar replicas act as one through the Redis service: the config
// names it by the name the replicas reach it by, on a network only they
// share with it (internal: no way out), and a shared store has one
// signing_key. The Redis image is one make compose-images stands in for.
func TestReplicasShareOneRedis(t *testing.T) {
	c := loadCompose(t)
	cfg := sidecarConfig(t, c)
	side, redis := c.Services["extauthz"], c.Services["redis"]
	if side.Deploy.Replicas < 2 {
		t.Errorf("service extauthz runs %d replica(s), want 2 or more", side.Deploy.Replicas)
	}
	if cfg.DatabrokerStorageType != "redis" {
		t.Fatalf("%s: databroker_storage_type %q, want redis", sidecarFile, cfg.DatabrokerStorageType)
	}
	u, err := url.Parse(cfg.DatabrokerStorageConnectionString)
	if err != nil || u.Scheme != "redis" {
		t.Fatalf("%s: databroker_storage_connection_string %q (%v), want redis://redis:6379/N", sidecarFile, cfg.DatabrokerStorageConnectionString, err)
	}
	port, _ := strconv.Atoi(u.Port())
	if u.Hostname() != "redis" || !redis.containerPorts(t)[port] {
		t.Errorf("the sidecar reaches its store at %s, not the redis service's exposed port (%v)", u.Host, redis.containerPorts(t))
	}
	if cfg.SigningKey == "" || cfg.KeyGenerated {
		t.Error("the replicas would each generate a signing key: SIGNING_KEY must reach them")
	}
	if len(redis.Ports) != 0 {
		t.Errorf("service redis publishes %v: only the replicas may reach it", redis.Ports)
	}
	shared := ""
	for _, n := range redis.networks() {
		if slices.Contains(side.networks(), n) {
			shared = n
		}
		for name, s := range c.Services {
			if name != "redis" && name != "extauthz" && slices.Contains(s.networks(), n) {
				t.Errorf("service %s shares network %s with redis: only the sidecar replicas should", name, n)
			}
		}
	}
	if shared == "" {
		t.Fatalf("the sidecar (networks %v) and redis (%v) share no network", side.networks(), redis.networks())
	}
	if !c.Networks[shared].Internal {
		t.Errorf("network %s, the store's, is not internal: true", shared)
	}
	standins := standinImages(t)
	for name, s := range c.Services {
		if s.Build == nil && !standins[s.Image] {
			t.Errorf("service %s's image %s has no stand-in in standin-images.sh (make compose-images makes %v)", name, s.Image, standins)
		}
	}
}

// standinImages are the images standin-images.sh tags: the values of its
// *_IMAGE=... lines, with the ${VAR} they use expanded.
func standinImages(t *testing.T) map[string]bool {
	t.Helper()
	script, err := os.ReadFile("standin-images.sh")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	out := map[string]bool{}
	assign := regexp.MustCompile(`^([A-Z_]+)=(\S+)$`)
	for _, line := range strings.Split(string(script), "\n") {
		m := assign.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v := os.Expand(m[2], func(k string) string { return vars[k] })
		vars[m[1]] = v
		if strings.HasSuffix(m[1], "_IMAGE") {
			out[v] = true
		}
	}
	return out
}

// Secrets come from .env (make compose-env), never from a default in the
// compose file, and never reach an image: .dockerignore keeps .env, and the
// build outputs, out of the build context.
func TestSecretsComeFromDotEnv(t *testing.T) {
	c := loadCompose(t)
	for name, vars := range map[string][]string{
		"extauthz": {"SHARED_SECRET", "SIGNING_KEY", "IDP_CLIENT_SECRET"},
		"idp":      {"IDP_CLIENT_SECRET"},
	} {
		for _, v := range vars {
			val := c.Services[name].Environment[v]
			if !strings.HasPrefix(val, "${"+v+":?") {
				t.Errorf("service %s: %s is %q; want ${%s:?...} (required, from .env)", name, v, val, v)
			}
		}
	}
	root, err := envoytest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns := strings.Fields(string(b))
	for _, want := range []string{"**/.env", ".git", ".venv", "/bin", "/dist", ".k8s", "bench/.bin", "bench/out"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
	if _, err := os.Stat("Dockerfile.dockerignore"); err == nil {
		t.Error("Dockerfile.dockerignore would override /.dockerignore under BuildKit: keep one list")
	}
	gi, err := os.ReadFile(filepath.Join(root, ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Fields(string(gi)), "/examples/docker-compose/.env") {
		t.Error(".gitignore lacks /examples/docker-compose/.env")
	}
}

func checkBuild(t *testing.T, service, context, dockerfile string) {
	t.Helper()
	fi, err := os.Stat(context)
	if err != nil || !fi.IsDir() {
		t.Errorf("service %s: build context %s is not a directory (%v)", service, context, err)
		return
	}
	if _, err := os.Stat(filepath.Join(context, "go.mod")); err != nil {
		t.Errorf("service %s: build context %s is not the repository root", service, context)
	}
	df := filepath.Join(context, dockerfile) // compose resolves dockerfile against the context
	src, err := os.ReadFile(df)
	if err != nil {
		t.Errorf("service %s: dockerfile: %v", service, err)
		return
	}
	// Every COPY source from the context must exist in it.
	for _, m := range regexp.MustCompile(`(?m)^COPY\s+([^-\n][^\n]*)$`).FindAllStringSubmatch(string(src), -1) {
		fields := strings.Fields(m[1])
		for _, f := range fields[:len(fields)-1] {
			if _, err := os.Stat(filepath.Join(context, f)); err != nil {
				t.Errorf("service %s: %s copies %s, missing from the context: %v", service, dockerfile, f, err)
			}
		}
	}
	for _, m := range regexp.MustCompile(`go build[^\n]*\s(\./cmd/[a-z0-9_-]+)`).FindAllStringSubmatch(string(src), -1) {
		if _, err := os.Stat(filepath.Join(context, m[1])); err != nil {
			t.Errorf("service %s: %s builds %s, which does not exist", service, dockerfile, m[1])
		}
	}
	if !strings.Contains(string(src), "./cmd/extauthz") {
		t.Errorf("service %s: %s does not build ./cmd/extauthz", service, dockerfile)
	}
}

func argAfter(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

func loadEnvoy(t *testing.T) *bootstrapv3.Bootstrap {
	t.Helper()
	b, err := envoytest.LoadBootstrap(envoyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := envoytest.ValidateDeep(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// sidecarConfig loads config.yaml through the sidecar's own config loader,
// with the environment docker-compose.yaml gives it.
func sidecarConfig(t *testing.T, c compose) *config.Config {
	t.Helper()
	src, err := os.ReadFile(sidecarFile)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for k, v := range c.Services["extauthz"].Environment {
		env[k] = composeDefault(v)
	}
	// What make compose-env writes, in test values.
	_, signingKey := testkit.SigningKey(t)
	for k, v := range map[string]string{
		"SHARED_SECRET":     base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")),
		"SIGNING_KEY":       signingKey,
		"IDP_CLIENT_SECRET": testClientSecret,
	} {
		if _, ok := env[k]; !ok {
			t.Fatalf("service extauthz does not get %s", k)
		}
		env[k] = v
	}
	cfg, err := config.Parse(src, sidecarFile, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("the sidecar refuses %s: %v", sidecarFile, err)
	}
	return cfg
}

// composeDefault resolves "${VAR:-default}" to default, and "${VAR:?msg}" to "".
func composeDefault(v string) string {
	if m := regexp.MustCompile(`^\$\{[A-Z_]+:-(.*)\}$`).FindStringSubmatch(v); m != nil {
		return m[1]
	}
	if strings.HasPrefix(v, "${") {
		return ""
	}
	return v
}

func TestEnvoyMatchesServices(t *testing.T) {
	c := loadCompose(t)
	b := loadEnvoy(t)
	cfg := sidecarConfig(t, c)

	// Every cluster endpoint is a compose service, on a port that service exposes.
	for _, cl := range b.GetStaticResources().GetClusters() {
		if cl.GetType() != clusterv3.Cluster_STRICT_DNS && cl.GetType() != clusterv3.Cluster_LOGICAL_DNS {
			t.Errorf("cluster %s: type %v; compose service names need STRICT_DNS or LOGICAL_DNS", cl.GetName(), cl.GetType())
		}
		for _, ep := range envoytest.Endpoints(cl) {
			s, ok := c.Services[ep.Host]
			if !ok {
				t.Errorf("cluster %s points at %s, which is not a compose service", cl.GetName(), ep)
				continue
			}
			if !s.containerPorts(t)[ep.Port] {
				t.Errorf("cluster %s points at %s, but service %s exposes %v", cl.GetName(), ep, ep.Host, s.containerPorts(t))
			}
			if !slices.Contains(c.Services["envoy"].dependsOn(), ep.Host) {
				t.Errorf("service envoy does not depend on %s (cluster %s)", ep.Host, cl.GetName())
			}
		}
	}

	// The sidecar listens where Envoy's clusters look for it, on every interface.
	for cluster, addr := range map[string]string{"extauthz_grpc": cfg.GRPCAddress, "extauthz_http": cfg.HTTPAddress} {
		cl := envoytest.Cluster(b, cluster)
		if cl == nil {
			t.Errorf("no cluster %s", cluster)
			continue
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("%s: address %q: %v", sidecarFile, addr, err)
			continue
		}
		eps := envoytest.Endpoints(cl)
		if len(eps) != 1 || eps[0].Host != "extauthz" || strconv.Itoa(eps[0].Port) != port {
			t.Errorf("cluster %s is %v, the sidecar listens on %s", cluster, eps, addr)
		}
		if host != "0.0.0.0" && host != "" && host != "::" {
			t.Errorf("%s: the sidecar listens on %s, unreachable from the envoy container", sidecarFile, addr)
		}
	}
	if eps := envoytest.Endpoints(envoytest.Cluster(b, "upstream")); len(eps) != 1 || eps[0].Host != "echo" {
		t.Errorf("cluster upstream is %v, want the echo service", eps)
	}

	// The listener is what compose publishes.
	for _, l := range b.GetStaticResources().GetListeners() {
		ep := envoytest.SocketAddress(l.GetAddress())
		if ep.Host != "0.0.0.0" {
			t.Errorf("listener %s binds %s: inside a container it must bind 0.0.0.0", l.GetName(), ep)
		}
		if !slices.Contains(mapValues(c.Services["envoy"].publishedPorts(t)), ep.Port) {
			t.Errorf("listener port %d is not published by service envoy (%v)", ep.Port, c.Services["envoy"].Ports)
		}
	}
	if ep := envoytest.SocketAddress(b.GetAdmin().GetAddress()); ep.Host != "127.0.0.1" {
		t.Errorf("admin on %s: keep it on the container's loopback", ep)
	} else if _, published := c.Services["envoy"].publishedPorts(t)[ep.Port]; published {
		t.Errorf("admin port %d is published", ep.Port)
	}

	// The Envoy image is the version the tests run.
	if img := c.Services["envoy"].Image; img != "envoyproxy/envoy:v1.40.0" {
		t.Errorf("envoy image %s, want envoyproxy/envoy:v1.40.0", img)
	}
	if bin, err := envoytest.Binary(); err == nil {
		out, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "/1.40.") {
			t.Errorf("the tests' Envoy is not 1.40 (%v): %s", err, out)
		}
	}
}

func mapValues(m map[int]int) []int {
	var out []int
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// The sidecar's routes are Envoy's virtual hosts: each policy route is named by
// exactly one virtual host's context extension, whose domains are the
// route's host with and without a port.
func TestRoutesMatchSidecarConfig(t *testing.T) {
	c := loadCompose(t)
	b := loadEnvoy(t)
	cfg := sidecarConfig(t, c)

	hcms, err := envoytest.HCMs(b)
	if err != nil || len(hcms) != 1 {
		t.Fatalf("want one http_connection_manager, got %d (%v)", len(hcms), err)
	}
	byRoute := map[string][]string{} // route name -> domains of the virtual hosts naming it
	for _, vh := range hcms[0].Config.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			pr, err := envoytest.ExtAuthzPerRoute(r.GetTypedPerFilterConfig())
			if err != nil {
				t.Fatal(err)
			}
			if name := pr.GetCheckSettings().GetContextExtensions()["route"]; name != "" {
				byRoute[name] = append(byRoute[name], vh.GetDomains()...)
			}
		}
	}
	var policyNames []string
	for _, r := range cfg.Policy {
		policyNames = append(policyNames, r.Name)
		domains, ok := byRoute[r.Name]
		if !ok {
			t.Errorf("policy route %q has no Envoy virtual host passing route=%s", r.Name, r.Name)
			continue
		}
		u, err := url.Parse(r.From)
		if err != nil {
			t.Errorf("route %s: from %q: %v", r.Name, r.From, err)
			continue
		}
		for _, want := range []string{u.Hostname(), u.Hostname() + ":*"} {
			if !slices.Contains(domains, want) {
				t.Errorf("route %s (from %s): Envoy's virtual host domains %v lack %s", r.Name, r.From, domains, want)
			}
		}
	}
	for name := range byRoute {
		if !slices.Contains(policyNames, name) {
			t.Errorf("Envoy passes route=%s, which %s does not define", name, sidecarFile)
		}
	}
}

// testClientSecret stands in for IDP_CLIENT_SECRET from .env.
const testClientSecret = "compose-test-client-secret"

// The demo provider and the sidecar agree on the issuer, the client and the
// callback; the issuer is one URL for the browser (a published loopback port)
// and for the sidecar (a network alias); the users carry the groups the
// routes name, and the administrator is one of them.
func TestDemoIdPMatchesSidecarConfig(t *testing.T) {
	c := loadCompose(t)
	cfg := sidecarConfig(t, c)
	var idp struct {
		Issuer       string   `yaml:"issuer"`
		Listen       string   `yaml:"listen"`
		ClientID     string   `yaml:"client_id"`
		RedirectURIs []string `yaml:"redirect_uris"`
		Users        []struct {
			Name   string   `yaml:"name"`
			Email  string   `yaml:"email"`
			Groups []string `yaml:"groups"`
		} `yaml:"users"`
	}
	decodeYAML(t, idpFile, &idp)

	if idp.Issuer != cfg.IdpProviderURL {
		t.Errorf("the demo provider's issuer %q != idp_provider_url %q", idp.Issuer, cfg.IdpProviderURL)
	}
	iss, err := url.Parse(idp.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Services["idp"]
	if !strings.HasSuffix(iss.Hostname(), ".localhost") {
		t.Errorf("issuer host %s: browsers resolve only *.localhost to this machine without /etc/hosts", iss.Hostname())
	}
	if !slices.Contains(s.Networks["default"].Aliases, iss.Hostname()) {
		t.Errorf("service idp has no network alias %s: the sidecar could not reach its issuer", iss.Hostname())
	}
	port, _ := strconv.Atoi(iss.Port())
	if s.publishedPorts(t)[port] != port {
		t.Errorf("the issuer %s needs service idp to publish port %d on the same host port (ports %v)", idp.Issuer, port, s.Ports)
	}
	if _, p, _ := net.SplitHostPort(idp.Listen); p != iss.Port() {
		t.Errorf("the demo provider listens on %s, its issuer says port %s", idp.Listen, iss.Port())
	}
	if target := argAfter(s.Command, "--config"); !slices.ContainsFunc(s.mounts(t), func(m mount) bool { return m.source == "./"+idpFile && m.target == target }) {
		t.Errorf("service idp reads %s, where ./%s is not mounted", target, idpFile)
	}
	if idp.ClientID != cfg.IdpClientID {
		t.Errorf("the demo provider's client %q != idp_client_id %q", idp.ClientID, cfg.IdpClientID)
	}
	callback := strings.TrimSuffix(cfg.AuthenticateServiceURL, "/") + "/.pomerium/callback"
	if !slices.Contains(idp.RedirectURIs, callback) {
		t.Errorf("the demo provider's redirect URIs %v lack %s", idp.RedirectURIs, callback)
	}
	if cfg.IdpClientSecret != testClientSecret {
		t.Errorf("the sidecar's idp_client_secret is not IDP_CLIENT_SECRET")
	}

	groups := map[string]bool{}
	emails := map[string]bool{}
	for _, u := range idp.Users {
		emails[u.Email] = true
		for _, g := range u.Groups {
			groups[g] = true
		}
	}
	for _, r := range cfg.Policy {
		for _, g := range r.AllowedGroups {
			if !groups[g] {
				t.Errorf("route %s allows group %s, which no demo user has", r.Name, g)
			}
		}
	}
	for _, a := range cfg.Administrators {
		if !emails[a] {
			t.Errorf("administrator %s is not a demo user", a)
		}
	}
	if u, err := url.Parse(cfg.AuthenticateServiceURL); err != nil || u.Port() != "8080" {
		t.Errorf("authenticate_service_url %s must be on Envoy's published port 8080", cfg.AuthenticateServiceURL)
	}
	for _, r := range cfg.Policy {
		if u, err := url.Parse(r.From); err != nil || u.Port() != "8080" {
			t.Errorf("route %s: from %s must carry Envoy's published port 8080: sign-in compares scheme, host and port exactly", r.Name, r.From)
		}
	}
}

// The compose Envoy config differs from the bundled one only in its listener
// address and in how clusters find their endpoints.
func TestEnvoySameAsBundled(t *testing.T) {
	b := loadEnvoy(t)
	root, err := envoytest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bundled, err := envoytest.LoadBootstrap(filepath.Join(root, "envoy", "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	normalize := func(in *bootstrapv3.Bootstrap) *bootstrapv3.Bootstrap {
		out := proto.Clone(in).(*bootstrapv3.Bootstrap)
		for _, l := range out.GetStaticResources().GetListeners() {
			l.Address = nil
		}
		for _, c := range out.GetStaticResources().GetClusters() {
			c.ClusterDiscoveryType = nil
			c.DnsLookupFamily = clusterv3.Cluster_AUTO
			c.LoadAssignment = nil
		}
		return out
	}
	if !proto.Equal(normalize(b), normalize(bundled)) {
		t.Errorf("%s has drifted from envoy/envoy.yaml beyond listener address and cluster endpoints; copy the change across", envoyFile)
	}
}

func TestEnvoyValidate(t *testing.T) {
	bin, err := envoytest.Binary()
	if err != nil {
		if envoytest.InCI() {
			t.Fatalf("CI=true but Envoy is required: %v", err)
		}
		t.Skipf("skipping envoy --mode validate: %v", err)
	}
	out, err := envoytest.Validate(bin, envoyFile)
	if err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("%s --mode validate -c %s: %v\n%s", bin, envoyFile, err, out)
	}
}

// The README gives the exact commands.
func TestREADMECommands(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, want := range []string{
		"docker compose up --build",
		"docker compose run --rm",
		"service-account",
		`curl http://app.localhost:8080/headers -H "Accept: application/json" -H "Authorization: Pomerium $jwt"`,
		"-iss authenticate.localhost",
		"make compose-env",
		"make compose-images",
		"--entrypoint /bin/pomerium-cli",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md lacks %q", want)
		}
	}
}
