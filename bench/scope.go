package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/extauthz/extauthz/internal/envoytest"
)

// scope lets the runner reuse internal/envoytest, whose Start takes a
// testing.TB, outside a test: Fatalf and Skipf abort the call they happen in
// (see startEnvoy), TempDir and Cleanup are owned by the scope and undone by
// Close. Only the methods envoytest calls are implemented; the embedded nil
// testing.TB makes any other call panic loudly instead of passing silently.
type scope struct {
	testing.TB

	mu       sync.Mutex
	logf     func(format string, args ...any)
	dirs     []string
	cleanups []func()
	failed   bool
}

// abort is what Fatalf and Skipf panic with; startEnvoy recovers it.
type abort struct {
	err     error
	skipped bool
}

func newScope(logf func(string, ...any)) *scope { return &scope{logf: logf} }

func (s *scope) Helper()      {}
func (s *scope) Name() string { return "bench" }
func (s *scope) Failed() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.failed }
func (s *scope) Log(args ...any) {
	s.logf("%s", fmt.Sprint(args...))
}
func (s *scope) Logf(format string, args ...any) { s.logf(format, args...) }
func (s *scope) Error(args ...any)               { s.fail(); s.Log(args...) }
func (s *scope) Errorf(format string, args ...any) {
	s.fail()
	s.Logf(format, args...)
}
func (s *scope) Fatal(args ...any) { s.fail(); panic(abort{err: errors.New(fmt.Sprint(args...))}) }
func (s *scope) Fatalf(format string, args ...any) {
	s.fail()
	panic(abort{err: fmt.Errorf(format, args...)})
}
func (s *scope) Skip(args ...any) { panic(abort{err: errors.New(fmt.Sprint(args...)), skipped: true}) }
func (s *scope) Skipf(format string, args ...any) {
	panic(abort{err: fmt.Errorf(format, args...), skipped: true})
}
func (s *scope) fail() { s.mu.Lock(); s.failed = true; s.mu.Unlock() }

func (s *scope) TempDir() string {
	dir, err := os.MkdirTemp("", "extauthz-bench-")
	if err != nil {
		s.Fatalf("TempDir: %v", err)
	}
	s.mu.Lock()
	s.dirs = append(s.dirs, dir)
	s.mu.Unlock()
	return dir
}

func (s *scope) Cleanup(f func()) {
	s.mu.Lock()
	s.cleanups = append(s.cleanups, f)
	s.mu.Unlock()
}

// Close runs the cleanups, last registered first, and removes the temp dirs.
func (s *scope) Close() {
	s.mu.Lock()
	cleanups, dirs := s.cleanups, s.dirs
	s.cleanups, s.dirs = nil, nil
	s.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

// errNoEnvoy is returned by startEnvoy when no Envoy binary can be found.
var errNoEnvoy = errors.New("no Envoy binary")

// startEnvoy runs envoytest.Start in s and turns its Fatalf/Skipf into an
// error. The Envoy is stopped by s.Close.
func startEnvoy(s *scope, opts envoytest.Options) (e *envoytest.Envoy, err error) {
	defer func() {
		if r := recover(); r != nil {
			a, ok := r.(abort)
			if !ok {
				panic(r)
			}
			if a.skipped {
				err = fmt.Errorf("%w: %v", errNoEnvoy, a.err)
				return
			}
			err = a.err
		}
	}()
	return envoytest.Start(s, opts), nil
}
