package testkit

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/proc"
)

// Sidecar is `extauthz serve` running as a process, as users run it.
type Sidecar struct {
	// Config is the config file it serves, which it reloads on change.
	Config string
	// Logs are its stdout and stderr (JSON lines).
	Logs *SyncBuffer
	proc *proc.Proc
}

// StartSidecar runs binary serve on config (YAML text, written to a file),
// waits until /healthz on httpPort answers 200 and stops it when the test
// ends.
func StartSidecar(t testing.TB, binary, config string, httpPort int) *Sidecar {
	t.Helper()
	s := &Sidecar{Config: WriteFile(t, "config.yaml", config), Logs: &SyncBuffer{}}
	cmd := exec.Command(binary, "serve", "--config", s.Config, "--log-format", "json")
	cmd.Stdout, cmd.Stderr = s.Logs, s.Logs
	var err error
	if s.proc, err = proc.Start(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	s.waitHealthy(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", httpPort))
	return s
}

// Signal sends sig (SIGHUP: reload) to the running sidecar.
func (s *Sidecar) Signal(sig os.Signal) error { return s.proc.Cmd.Process.Signal(sig) }

// Stop interrupts the sidecar (SIGINT, then SIGKILL after 10 s) and waits.
func (s *Sidecar) Stop() { s.proc.Stop(os.Interrupt, 10*time.Second) }

func (s *Sidecar) waitHealthy(t testing.TB, url string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-s.proc.Done():
			t.Fatalf("the sidecar exited:\n%s", s.Logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("the sidecar did not become ready at %s:\n%s", url, s.Logs.String())
}

// SyncBuffer is a strings.Builder safe for one writer and many readers.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
