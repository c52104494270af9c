// Package proc runs a child process (Envoy, the sidecar under test, the
// benchmark's servers) and stops it: a signal, then SIGKILL once a grace
// period has passed.
package proc

import (
	"os"
	"os/exec"
	"sync"
	"time"
)

// Proc is a started process.
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
	once sync.Once
}

// Start starts cmd and watches for its exit.
func Start(cmd *exec.Cmd) (*Proc, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how the process ended (cmd.Wait's error), once Done is closed.
func (p *Proc) Err() error { <-p.done; return p.err }

// Stop sends sig, then SIGKILL after grace, and waits for the exit. Only the
// first call signals; every call waits.
func (p *Proc) Stop(sig os.Signal, grace time.Duration) {
	p.once.Do(func() {
		if p.Exited() {
			return
		}
		_ = p.Cmd.Process.Signal(sig)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.Cmd.Process.Kill()
		}
	})
	<-p.done
}
