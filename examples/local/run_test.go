//go:build unix

// Package local_test runs examples/local/run.sh (make demo) under dash, the
// strictest common POSIX sh, so that the demo keeps working with macOS's
// /bin/sh and on machines without bash: its syntax, its refusal of a busy
// port, and a real run through Envoy whose printed commands are pasted into a
// shell.
package local_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/envoytest"
)

// ports are the ones envoy/envoy.yaml and the demo config fix.
var ports = []string{"8080", "9901", "9191", "9292", "8081"}

func dash(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("dash")
	if err != nil {
		if envoytest.InCI() {
			t.Fatal("CI=true but dash is not installed: the demo script must be tested under a POSIX sh")
		}
		t.Skip("dash is not installed (apt-get install dash)")
	}
	return p
}

func script(t *testing.T) (root, path string) {
	t.Helper()
	root, err := envoytest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root, filepath.Join(root, "examples", "local", "run.sh")
}

func TestRunScriptIsPOSIX(t *testing.T) {
	_, path := script(t)
	out, err := exec.Command(dash(t), "-n", path).CombinedOutput()
	if err != nil {
		t.Fatalf("dash -n %s: %v\n%s", path, err, out)
	}
	t.Run("it asks for sh, not bash", func(t *testing.T) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if first, _, _ := strings.Cut(string(b), "\n"); first != "#!/bin/sh" {
			t.Errorf("first line %q, want #!/bin/sh", first)
		}
	})
}

func TestRunScriptRefusesABusyPort(t *testing.T) {
	sh := dash(t)
	root, path := script(t)
	// Hold 8080 unless something else already does: either way it is busy.
	if l, err := net.Listen("tcp", "127.0.0.1:8080"); err == nil {
		defer l.Close()
	}
	cmd := exec.Command(sh, path)
	cmd.Dir = root
	// A script that got past the port check would stop here, not install Envoy.
	cmd.Env = append(os.Environ(), "ENVOY_BIN=/nonexistent/envoy")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)

	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want 1\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	msg := strings.TrimSpace(stderr.String())
	t.Run("it says, in one line, which port is busy and what needs it", func(t *testing.T) {
		if strings.Contains(msg, "\n") || !strings.Contains(msg, "port 8080 (Envoy's listener)") || !strings.Contains(msg, "already in use") {
			t.Errorf("stderr = %q", msg)
		}
	})
	t.Run("it prints no curl error and starts nothing", func(t *testing.T) {
		if strings.Contains(msg, "curl:") || stdout.Len() != 0 {
			t.Errorf("stdout %q, stderr %q", stdout.String(), msg)
		}
	})
	t.Run("it fails within seconds, not after a readiness timeout", func(t *testing.T) {
		// Generous for a loaded machine; the old script took 24 s.
		if took > 10*time.Second {
			t.Errorf("took %s", took)
		}
	})
}

// demo is a running run.sh.
type demo struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    strings.Builder // stdout and stderr, interleaved
	banner chan struct{}   // closed at the "Logs:" line
	done   chan struct{}
}

func (d *demo) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

func startDemo(t *testing.T, sh, root, path, envoy string) *demo {
	t.Helper()
	d := &demo{banner: make(chan struct{}), done: make(chan struct{})}
	d.cmd = exec.Command(sh, path)
	d.cmd.Dir = root
	d.cmd.Env = append(os.Environ(), "ENVOY_BIN="+envoy)
	// Its own process group, so the cleanup can reach every child if the
	// script itself fails to stop them.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	d.cmd.Stdout, d.cmd.Stderr = pw, pw
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		seen := false
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if !seen && strings.HasPrefix(sc.Text(), "Logs: ") {
				seen = true
				close(d.banner)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() { _ = d.cmd.Wait(); pw.Close(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
			return
		default:
		}
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.done
		}
	})
	return d
}

// runDemo starts run.sh with the Envoy the tests use and waits for its
// commands, skipping when a port it needs is busy.
func runDemo(t *testing.T) (d *demo, sh, root, out string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds two binaries and starts Envoy; skipped with -short")
	}
	sh = dash(t)
	envoy := envoytest.RequireBinary(t)
	root, path := script(t)
	// The demo's ports are fixed (8080, 9191, 9292...), and other packages'
	// tests (cmd/extauthz's demo test) use some of them for a second or two:
	// wait for them rather than skip, and under CI never skip.
	for attempt := 1; ; attempt++ {
		waitPortsFree(t)
		d = startDemo(t, sh, root, path, envoy)
		select {
		case <-d.banner:
			return d, sh, root, d.output()
		case <-d.done:
			out := d.output()
			if strings.Contains(out, "already in use") && attempt < 3 {
				continue // taken between our check and its start: try again
			}
			t.Fatalf("run.sh exited before printing its commands:\n%s", out)
		case <-time.After(4 * time.Minute):
			t.Fatalf("run.sh printed no commands within 4 minutes:\n%s", d.output())
		}
	}
}

// waitPortsFree waits up to 90 s for every demo port to be free; then it
// skips, or under CI fails, naming the busy one.
func waitPortsFree(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		busy := ""
		for _, port := range ports {
			l, err := net.Listen("tcp", "127.0.0.1:"+port)
			if err != nil {
				busy = port
				break
			}
			l.Close()
		}
		if busy == "" {
			return
		}
		if time.Now().After(deadline) {
			if envoytest.InCI() {
				t.Fatalf("the demo needs port %s, which stayed busy for 90 s", busy)
			}
			t.Skipf("the demo needs port %s, which is busy on this machine", busy)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

var (
	pidsLine = regexp.MustCompile(`PIDs: Envoy (\d+) .*, extauthz (\d+), echo (\d+)\.`)
	logsLine = regexp.MustCompile(`(?m)^Logs: (\S+)`)
)

func TestRunScriptServesThroughEnvoy(t *testing.T) {
	d, sh, root, out := runDemo(t)

	var exports []string
	for _, m := range regexp.MustCompile(`(?m)^  (export [A-Z_]+=\S+)$`).FindAllStringSubmatch(out, -1) {
		exports = append(exports, m[1])
	}
	for _, name := range []string{"POMERIUM_SHARED_KEY", "BOB", "ALICE", "ALICE_AS_BOB"} {
		if !strings.Contains(out, "  export "+name+"=") {
			t.Fatalf("no export line for %s:\n%s", name, out)
		}
	}
	// paste runs lines in a fresh sh after the printed exports, as a reader would.
	paste := func(t *testing.T, lines ...string) string {
		t.Helper()
		cmd := exec.Command(sh, "-c", strings.Join(append(append([]string{}, exports...), lines...), "\n"))
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "NO_PROXY=*", "no_proxy=*")
		res, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(lines, "; "), err, res)
		}
		return string(res)
	}

	curls := regexp.MustCompile(`(?m)^  (curl -i \S+.*?)\s+# (\d{3})(.*)$`).FindAllStringSubmatch(out, -1)
	if len(curls) != 4 {
		t.Fatalf("want the 4 curl lines, found %d:\n%s", len(curls), out)
	}
	for _, m := range curls {
		line, want, note := m[1], m[2], strings.TrimSpace(m[3])
		t.Run(fmt.Sprintf("the printed curl answers %s (%s)", want, strings.TrimPrefix(note, ", ")), func(t *testing.T) {
			res := paste(t, line)
			if got := statusOf(res); got != want {
				t.Errorf("status %s, want %s\n%s", got, want, res)
			}
			if strings.Contains(line, "$BOB") && !strings.Contains(strings.ToLower(res), `"x-pomerium-claim-email": "bob@corp.example"`) {
				t.Errorf("the upstream did not see bob:\n%s", res)
			}
		})
	}

	t.Run("a token minted as the README says, with the printed secret, is allowed", func(t *testing.T) {
		res := paste(t,
			`TOKEN=$(bin/extauthz service-account -email carol@corp.example -groups engineering -aud app.localhost -iss authenticate.localhost -expiry 1h)`,
			`curl -i -sS http://app.localhost:8080/headers -H "Accept: application/json" -H "Authorization: Pomerium $TOKEN"`)
		if got := statusOf(res); got != "200" || !strings.Contains(strings.ToLower(res), "carol@corp.example") {
			t.Errorf("status %s\n%s", got, res)
		}
	})

	pids := pidsLine.FindStringSubmatch(out)
	logs := logsLine.FindStringSubmatch(out)
	t.Run("it prints the PIDs of all three and where the logs are", func(t *testing.T) {
		if pids == nil || logs == nil {
			t.Fatalf("no PIDs or Logs line:\n%s", out)
		}
		if _, err := os.Stat(logs[1]); err != nil {
			t.Errorf("log folder: %v", err)
		}
	})

	t.Run("SIGTERM stops all three and removes the logs", func(t *testing.T) {
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("still running 30 s after SIGTERM:\n%s", d.output())
		}
		if code := d.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit code %d:\n%s", code, d.output())
		}
		for _, pid := range pids[1:] {
			if running(pid) {
				t.Errorf("pid %s still runs", pid)
			}
		}
		if logs != nil {
			if _, err := os.Stat(logs[1]); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("log folder %s is still there after a clean stop (%v)", logs[1], err)
			}
		}
	})
}

func TestRunScriptKeepsTheLogsWhenAPartStops(t *testing.T) {
	d, _, _, out := runDemo(t)
	pids := pidsLine.FindStringSubmatch(out)
	logs := logsLine.FindStringSubmatch(out)
	if pids == nil || logs == nil {
		t.Fatalf("no PIDs or Logs line:\n%s", out)
	}
	t.Cleanup(func() { os.RemoveAll(logs[1]) })
	var echo int
	fmt.Sscan(pids[3], &echo)
	if err := syscall.Kill(echo, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after echo was killed:\n%s", d.output())
	}
	out = d.output()
	t.Run("it exits 1 naming the part that stopped", func(t *testing.T) {
		if code := d.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(out, "echo (pid "+pids[3]+") stopped unexpectedly") {
			t.Errorf("exit code %d:\n%s", code, out)
		}
	})
	t.Run("it keeps the logs and says where", func(t *testing.T) {
		if !strings.Contains(out, "Logs kept in "+logs[1]) {
			t.Errorf("no \"Logs kept in %s\":\n%s", logs[1], out)
		}
		if _, err := os.Stat(filepath.Join(logs[1], "extauthz.log")); err != nil {
			t.Errorf("the sidecar's log is gone: %v", err)
		}
	})
	t.Run("it stops the other two", func(t *testing.T) {
		for _, pid := range pids[1:3] {
			if running(pid) {
				t.Errorf("pid %s still runs", pid)
			}
		}
	})
}

// running reports whether the process with this decimal id exists.
func running(pid string) bool {
	var n int
	if _, err := fmt.Sscan(pid, &n); err != nil || n <= 0 {
		return false
	}
	return syscall.Kill(n, 0) == nil
}

// statusOf is the status code of the first HTTP status line in curl -i output.
func statusOf(res string) string {
	m := regexp.MustCompile(`(?m)^HTTP/[0-9.]+ (\d{3})`).FindStringSubmatch(res)
	if m == nil {
		return "none"
	}
	return m[1]
}
