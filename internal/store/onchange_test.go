package store

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestStoreOnChange: OnChange is called after every change of the view, once
// Revoked sees it, whether the revocation was made here or read from the
// backend (another replica's): the module's answer cache drops its answers
// there, so an answer computed before can never outlive the change.
func TestStoreOnChange(t *testing.T) {
	b := NewMemory(nil)
	local, remote := claims("j1", "s-local", "a@corp.example", time.Now()), claims("j2", "s-remote", "b@corp.example", time.Now())
	var (
		current atomic.Pointer[Store]
		mu      sync.Mutex
		seen    []string
	)
	s := New(b, Options{PollInterval: 10 * time.Millisecond, ResyncInterval: time.Hour, OnChange: func() {
		st := current.Load()
		mu.Lock()
		defer mu.Unlock()
		switch {
		case st == nil:
			seen = append(seen, "before New returned")
		case st.Revoked(remote):
			seen = append(seen, "remote")
		case st.Revoked(local):
			seen = append(seen, "local")
		default:
			seen = append(seen, "nothing visible")
		}
	}})
	current.Store(s)
	defer s.Close()
	ctx := context.Background()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	last := func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return ""
		}
		return seen[len(seen)-1]
	}
	tests := []struct {
		name, want string
		revoke     func() error
	}{
		{"a revocation made here", "local", func() error { return s.RevokeSID(ctx, "s-local") }},
		{"a revocation read from the backend", "remote", func() error {
			return b.Revoke(ctx, NewRevocation(KindSID, "s-remote", time.Now(), time.Hour))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" calls OnChange once it is in force", func(t *testing.T) {
			if err := tt.revoke(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for last() != tt.want && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if got := last(); got != tt.want {
				t.Errorf("OnChange last saw %q, want %q (all: %v)", got, tt.want, seen)
			}
		})
	}
}
