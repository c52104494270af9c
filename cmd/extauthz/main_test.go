package main

// The tests in this package build the extauthz binary once (TestMain) and run
// it as a user would: os/exec with arguments, environment and stdin, asserting
// the exit code, stdout and stderr. A `pomerium-cli` symlink to the same binary
// checks that the name alone selects the service-account command.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var (
	// binExtauthz and binPomeriumCLI are the built binary and the symlink to it.
	binExtauthz    string
	binPomeriumCLI string
)

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "extauthz-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating the build directory:", err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if err := buildBinary(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// buildBinary builds ./ (this command) into dir, with the race detector when
// the tests themselves run with it, so that races in the real server show up.
func buildBinary(dir string) error {
	exe := ""
	if runtime.GOOS == "windows" {
		exe = ".exe"
	}
	binExtauthz = filepath.Join(dir, "extauthz"+exe)
	binPomeriumCLI = filepath.Join(dir, "pomerium-cli"+exe)
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := []string{"build", "-o", binExtauthz}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, ".")
	cmd := exec.Command(goTool, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	if err := os.Symlink(binExtauthz, binPomeriumCLI); err != nil {
		return fmt.Errorf("linking pomerium-cli: %w", err)
	}
	return nil
}

// result is how a finished command ended.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// invocation describes one run of the binary.
type invocation struct {
	bin   string            // binExtauthz when empty
	args  []string          // after the program name
	stdin string            // fed on stdin; an empty stdin is at EOF at once
	env   map[string]string // added to the clean base environment
}

// baseEnv is the environment every run starts from: only what a Go binary and
// the race detector need, so that a developer's SHARED_SECRET, POMERIUM_SHARED_KEY
// or any other config override cannot change what the tests see.
func baseEnv(extra map[string]string) []string {
	var out []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "SYSTEMROOT", "GOCOVERDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			out = append(out, k+"="+v)
		}
	}
	// A race-enabled binary otherwise sleeps a second at exit.
	out = append(out, strings.TrimSpace("GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	for k, v := range extra {
		out = append(out, k+"="+v)
	}
	return out
}

// execBin executes the binary to completion (at most a minute).
func execBin(t *testing.T, inv invocation) result {
	t.Helper()
	bin := inv.bin
	if bin == "" {
		bin = binExtauthz
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, inv.args...)
	cmd.Env = baseEnv(inv.env)
	cmd.Stdin = strings.NewReader(inv.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	default:
		t.Fatalf("running %s %q: %v", filepath.Base(bin), inv.args, err)
	}
	checkNoRace(t, r.stderr)
	return r
}

// checkNoRace fails the test when the race-enabled binary reported a race.
func checkNoRace(t *testing.T, stderr string) {
	t.Helper()
	if strings.Contains(stderr, "WARNING: DATA RACE") {
		t.Errorf("the binary reported a data race:\n%s", stderr)
	}
}

// assertUsageError checks the contract for usage errors: exit 2, nothing on
// stdout, and one line on stderr (after the secret prompt, when one was shown)
// that contains want and no usage text.
func assertUsageError(t *testing.T, r result, want string) {
	t.Helper()
	if r.code != exitUsage {
		t.Errorf("exit code = %d, want %d\n%s", r.code, exitUsage, r)
	}
	if r.stdout != "" {
		t.Errorf("stdout = %q, want nothing on a usage error", r.stdout)
	}
	msg := strings.TrimSpace(strings.ReplaceAll(r.stderr, secretPrompt, ""))
	if n := strings.Count(msg, "\n"); n != 0 || msg == "" {
		t.Errorf("stderr has %d lines, want exactly one sentence:\n%s", n+1, r.stderr)
	}
	if !strings.Contains(msg, want) {
		t.Errorf("stderr = %q, want it to mention %q", msg, want)
	}
	if strings.Contains(msg, "Usage") || strings.Contains(msg, "  -") {
		t.Errorf("stderr carries usage text beside the error:\n%s", r.stderr)
	}
}

func TestCommandDispatch(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
	}{
		{"an unknown subcommand is a usage error that names it", []string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{"no subcommand at all prints the usage and is a usage error", nil, exitUsage, "", "Usage: extauthz <command>"},
		{"help prints the command list on stdout", []string{"help"}, exitOK, "service-account", ""},
		{"--help prints the command list on stdout", []string{"--help"}, exitOK, "validate", ""},
		{"-h on a subcommand prints its flags and succeeds", []string{"validate", "-h"}, exitOK, "", "-config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := execBin(t, invocation{args: tt.args})
			if r.code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d\n%s", r.code, tt.wantCode, r)
			}
			if !strings.Contains(r.stdout, tt.wantStdout) {
				t.Errorf("stdout does not contain %q\n%s", tt.wantStdout, r)
			}
			if !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("stderr does not contain %q\n%s", tt.wantStderr, r)
			}
		})
	}
	t.Run("every command listed by help is one the binary knows", func(t *testing.T) {
		r := execBin(t, invocation{args: []string{"help"}})
		for name := range commands {
			if !strings.Contains(r.stdout, "  "+name+" ") {
				t.Errorf("help does not list %q:\n%s", name, r.stdout)
			}
		}
	})
}

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/tmp/x/extauthz", "/tmp/x/extauthz"},
		{"./extauthz", "./extauthz"},
		{"/tmp/my dir/extauthz", "'/tmp/my dir/extauthz'"},
		{"/tmp/it's/extauthz", `'/tmp/it'\''s/extauthz'`},
		{"", "''"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q is quoted as %q", tt.in, tt.want), func(t *testing.T) {
			if got := shellQuote(tt.in); got != tt.want {
				t.Errorf("shellQuote(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
