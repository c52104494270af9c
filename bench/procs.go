package main

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	child "github.com/extauthz/extauthz/internal/proc"
)

// logDir holds the children's output: the run's directory, removed when the
// run ends ("" until then: the system's temporary directory).
var logDir string

// proc is a child process the runner started: a server under test, the
// floor, oauth2-proxy or the echo upstream.
type proc struct {
	*child.Proc
	name string
	out  *os.File // its stdout and stderr, removed by Stop
	// metricsURL is ours' /metrics, whose go_gc_duration_seconds_count says
	// how many times its garbage collector ran ("" for the others).
	metricsURL string
}

func startProc(name, bin string, args ...string) (*proc, error) {
	return startProcEnv(name, bin, nil, args...)
}

// startProcEnv is startProc with extra environment variables (K=V).
//
// The child writes its output to a file of its own, read only when
// something fails. Through a pipe, the runner would copy every line a child
// logs (ours' audit entries: one per impersonated Check) on the two cores it
// shares with the servers, while measuring them.
func startProcEnv(name, bin string, extra []string, args ...string) (*proc, error) {
	out, err := os.CreateTemp(logDir, name+"-*.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	if len(extra) > 0 {
		cmd.Env = append(os.Environ(), extra...)
	}
	cmd.Stdout, cmd.Stderr = out, out
	c, err := child.Start(cmd)
	if err != nil {
		out.Close()
		os.Remove(out.Name())
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	return &proc{Proc: c, name: name, out: out}, nil
}

// tail is the last 4000 bytes p printed.
func (p *proc) tail() string {
	const n = 4000
	b, err := os.ReadFile(p.out.Name())
	if err != nil {
		return fmt.Sprintf("(its output is gone: %v)", err)
	}
	out := strings.TrimSpace(string(b))
	if len(out) > n {
		out = "..." + out[len(out)-n:]
	}
	return out
}

func (p *proc) Pid() int { return p.Cmd.Process.Pid }

// Stop sends SIGTERM, then SIGKILL after 10 s, and waits; its output stays
// in logDir, for failure.
func (p *proc) Stop() {
	p.Proc.Stop(syscall.SIGTERM, 10*time.Second)
	p.out.Close()
}

// failure describes why p is not usable, with the tail of its output.
func (p *proc) failure(err error) error {
	out := p.tail()
	if p.Exited() {
		return fmt.Errorf("%s exited (%v): %w\n--- %s output ---\n%s", p.name, p.Err(), err, p.name, out)
	}
	return fmt.Errorf("%s: %w\n--- %s output ---\n%s", p.name, err, p.name, out)
}

// waitReady polls ready until it returns nil, p exits or timeout passes.
func (p *proc) waitReady(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if p.Exited() {
			return p.failure(errors.New("not ready"))
		}
		if last = ready(); last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p.failure(fmt.Errorf("not ready after %s: %v", timeout, last))
}

func tcpReady(addr string) func() error { return dialReady("tcp", addr) }

// dialReady says a server listens once a connection to addr succeeds.
func dialReady(network, addr string) func() error {
	return func() error {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
}

func httpReady(url string, want int) func() error {
	client := &http.Client{Timeout: time.Second}
	return func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// procStat is what /proc says about a process: CPU time used so far (user +
// system), peak resident set (VmHWM) and current resident set (VmRSS).
type procStat struct {
	CPU      time.Duration
	PeakRSS  uint64 // bytes
	RSS      uint64 // bytes
	Threads  int
	sampleAt time.Time
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go runs on.
const clockTicks = 100

func readProcStat(pid int) (procStat, error) {
	var st procStat
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// The command name (field 2) may hold spaces and parentheses: split after
	// the last ')'. Then fields[0] is field 3 (state), utime is field 14 and
	// stime field 15.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return st, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 18 {
		return st, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return st, err
	}
	st.CPU = time.Duration(ut+stime) * time.Second / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "VmHWM", "VmRSS":
			n, err := strconv.ParseUint(strings.TrimSuffix(v, " kB"), 10, 64)
			if err != nil {
				return st, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
			}
			if k == "VmHWM" {
				st.PeakRSS = n << 10
			} else {
				st.RSS = n << 10
			}
		case "Threads":
			st.Threads, _ = strconv.Atoi(v)
		}
	}
	st.sampleAt = time.Now()
	return st, nil
}

// goTool returns the go command of the toolchain running us (go run sets
// GOROOT), or the one on PATH.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); isExec(p) {
		return p
	}
	return "go"
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// binaries are the programs the runner builds from this repository.
type binaries struct {
	Ours, Noop, Echo, Prof string
}

// build compiles extauthz, the no-op ext_authz server and the echo upstream
// into dir with the same toolchain, without the race detector.
func build(ctx context.Context, root, dir string, ours bool) (binaries, error) {
	b := binaries{
		Ours: filepath.Join(dir, "extauthz"),
		Noop: filepath.Join(dir, "noop"),
		Echo: filepath.Join(dir, "echo"),
		Prof: filepath.Join(dir, "profserver"),
	}
	for _, x := range []struct{ out, pkg string }{
		{b.Ours, "./cmd/extauthz"}, {b.Noop, "./bench/noop"}, {b.Echo, "./bench/echo"}, {b.Prof, "./bench/profserver"},
	} {
		if x.out == b.Ours && !ours {
			continue
		}
		cmd := exec.CommandContext(ctx, goTool(), "build", "-o", x.out, x.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", x.pkg, err, out)
		}
	}
	return b, nil
}

// The peer measured beside us, built from the Go module proxy.
const (
	oauth2ProxyModule  = "github.com/oauth2-proxy/oauth2-proxy/v7"
	oauth2ProxyVersion = "v7.15.6"
)

// oauth2ProxyPath is where the runner keeps oauth2-proxy: bench/.bin (ignored by git).
func oauth2ProxyPath(root string) string {
	return filepath.Join(root, "bench", ".bin", "oauth2-proxy")
}

// oauth2ProxyBuilt reports whether bench/.bin holds oauth2-proxy at the pinned version.
func oauth2ProxyBuilt(root string) bool {
	info, err := buildinfo.ReadFile(oauth2ProxyPath(root))
	return err == nil && info.Main.Path == oauth2ProxyModule && info.Main.Version == oauth2ProxyVersion
}

// installOAuth2Proxy builds oauth2-proxy at the pinned version into bench/.bin
// unless it is already there.
func installOAuth2Proxy(ctx context.Context, root string, logf func(string, ...any)) (string, error) {
	bin := oauth2ProxyPath(root)
	if oauth2ProxyBuilt(root) {
		return bin, nil
	}
	logf("installing %s@%s into %s (once; about a minute)", oauth2ProxyModule, oauth2ProxyVersion, filepath.Dir(bin))
	cmd := exec.CommandContext(ctx, goTool(), "install", oauth2ProxyModule+"@"+oauth2ProxyVersion)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(bin), "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %v\n%s", oauth2ProxyModule, oauth2ProxyVersion, err, out)
	}
	if !oauth2ProxyBuilt(root) {
		return "", fmt.Errorf("go install did not leave %s at %s", oauth2ProxyVersion, bin)
	}
	return bin, nil
}
