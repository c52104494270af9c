package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/extauthz/extauthz/internal/identity"
)

var t0 = time.Unix(1_800_000_000, 0)

func claims(jti, sid, email string, iat time.Time) *identity.Claims {
	c := &identity.Claims{SID: sid, Email: email}
	c.ID = jti
	if !iat.IsZero() {
		c.IssuedAt = jwt.NewNumericDate(iat)
	}
	return c
}

func TestViewRevoked(t *testing.T) {
	var v View
	v.init()
	v.add([]Revocation{
		NewRevocation(KindSID, "session-1", t0, time.Hour),
		NewRevocation(KindJTI, "token-1", t0, time.Hour),
		NewRevocation(KindUser, "Bob@Corp.Example", t0, time.Hour),
		NewRevocation(KindAuth, "carol@corp.example", t0, time.Hour),
	}, time.Time{})
	tests := []struct {
		name string
		c    *identity.Claims
		want bool
	}{
		{"a token of a revoked session is refused", claims("other", "session-1", "a@corp.example", t0.Add(time.Hour)), true},
		{"a token without sid whose jti is a revoked session id is refused", claims("session-1", "", "a@corp.example", t0), true},
		{"a revoked jti is refused", claims("token-1", "session-2", "a@corp.example", t0), true},
		{"a token whose sid is a revoked jti is not refused by it", claims("token-2", "token-1", "a@corp.example", t0), false},
		{"a token of a revoked user issued before is refused", claims("t3", "s3", "bob@corp.example", t0.Add(-time.Minute)), true},
		{"a token of a revoked user issued in the same second is refused", claims("t3", "s3", "bob@corp.example", t0.Add(900*time.Millisecond)), true},
		{"a revoked user is matched whatever the case of the email", claims("t3", "s3", "BOB@corp.example", t0), true},
		{"a token of a revoked user without iat is refused", claims("t3", "s3", "bob@corp.example", time.Time{}), true},
		{"a token of a revoked user issued after is accepted", claims("t4", "s4", "bob@corp.example", t0.Add(time.Second)), false},
		{"ending a user's authenticate sessions leaves their tokens alone", claims("t5", "s5", "carol@corp.example", t0.Add(-time.Hour)), false},
		{"anyone else's token is accepted", claims("t6", "s6", "alice@corp.example", t0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := v.Revoked(tt.c); got != tt.want {
				t.Errorf("Revoked = %v, want %v", got, tt.want)
			}
		})
	}

	ended := []struct {
		name  string
		email string
		iat   time.Time
		want  bool
	}{
		{"an authenticate session of a revoked user issued before is ended", "bob@corp.example", t0.Add(-time.Hour), true},
		{"an authenticate session of a signed-out user issued before is ended", "Carol@corp.example", t0, true},
		{"an authenticate session issued after is kept", "carol@corp.example", t0.Add(time.Second), false},
		{"anyone else's authenticate session is kept", "alice@corp.example", t0, false},
	}
	for _, tt := range ended {
		t.Run(tt.name, func(t *testing.T) {
			if got := v.AuthSessionEnded(tt.email, tt.iat); got != tt.want {
				t.Errorf("AuthSessionEnded = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestViewKeepsTheLaterRevocationOfAUser(t *testing.T) {
	var v View
	v.init()
	v.add([]Revocation{NewRevocation(KindUser, "bob@corp.example", t0.Add(time.Minute), time.Hour)}, time.Time{})
	v.add([]Revocation{NewRevocation(KindUser, "bob@corp.example", t0, time.Hour)}, time.Time{})
	if !v.Revoked(claims("t", "s", "bob@corp.example", t0.Add(30*time.Second))) {
		t.Error("an earlier revocation arriving late shrank what the later one ended")
	}
}

func TestViewPruneForgetsOnlyExpiredRevocations(t *testing.T) {
	var v View
	v.init()
	v.add([]Revocation{NewRevocation(KindSID, "short", t0, time.Minute), NewRevocation(KindSID, "long", t0, time.Hour)}, time.Time{})
	v.prune(t0.Add(2 * time.Minute))
	if v.Revoked(claims("x", "short", "", t0)) || !v.Revoked(claims("x", "long", "", t0)) || v.Len() != 1 {
		t.Errorf("after prune: short revoked %v, long revoked %v, len %d",
			v.Revoked(claims("x", "short", "", t0)), v.Revoked(claims("x", "long", "", t0)), v.Len())
	}
}

// flaky is a Backend that fails every call while down, and whose Load
// fails until the first time it is allowed.
type flaky struct {
	*Memory
	down atomic.Bool
}

var errDown = errors.New("connection refused")

func (f *flaky) err() error {
	if f.down.Load() {
		return errors.Join(ErrUnavailable, errDown)
	}
	return nil
}
func (f *flaky) Revoke(ctx context.Context, r Revocation) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.Memory.Revoke(ctx, r)
}
func (f *flaky) Load(ctx context.Context) (Position, []Revocation, error) {
	if err := f.err(); err != nil {
		return Position{}, nil, err
	}
	return f.Memory.Load(ctx)
}
func (f *flaky) Since(ctx context.Context, p Position) (Position, []Revocation, error) {
	if err := f.err(); err != nil {
		return Position{}, nil, err
	}
	return f.Memory.Since(ctx, p)
}
func (f *flaky) Changed() <-chan struct{} { return nil } // every change must be found by polling

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStoreFailsClosed(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	b := &flaky{Memory: NewMemory(nil)}
	b.down.Store(true)
	s := New(b, Options{PollInterval: 10 * time.Millisecond, Logger: zap.New(core)})
	defer s.Close()
	ctx := context.Background()
	up := s.Collector()

	t.Run("it is not ready before its first full read", func(t *testing.T) {
		time.Sleep(30 * time.Millisecond) // a few polls fail
		if s.Ready() {
			t.Fatal("ready without having read the store")
		}
		if got := testutil.ToFloat64(up); got != 0 {
			t.Errorf("extauthz_store_up = %v, want 0", got)
		}
	})
	t.Run("it is ready once the store answers", func(t *testing.T) {
		if err := b.Memory.Revoke(ctx, NewRevocation(KindSID, "before-start", time.Now(), time.Hour)); err != nil {
			t.Fatal(err)
		}
		b.down.Store(false)
		eventually(t, "ready", s.Ready)
		if !s.Revoked(claims("x", "before-start", "", time.Now())) {
			t.Error("a revocation made before the replica started is not in force")
		}
	})
	t.Run("a revocation made elsewhere arrives by polling", func(t *testing.T) {
		if err := b.Memory.Revoke(ctx, NewRevocation(KindSID, "elsewhere", time.Now(), time.Hour)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the revocation arrives", func() bool { return s.Revoked(claims("x", "elsewhere", "", time.Now())) })
	})
	t.Run("with the store down, every known revocation stays in force and writes fail", func(t *testing.T) {
		b.down.Store(true)
		eventually(t, "the outage is noticed", func() bool { return !s.Up() })
		if got := testutil.ToFloat64(up); got != 0 {
			t.Errorf("extauthz_store_up = %v, want 0", got)
		}
		for _, sid := range []string{"before-start", "elsewhere"} {
			if !s.Revoked(claims("x", sid, "", time.Now())) {
				t.Errorf("%s is no longer revoked during the outage", sid)
			}
		}
		err := s.RevokeSID(ctx, "during-outage")
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("RevokeSID during the outage = %v, want ErrUnavailable", err)
		}
		if s.Revoked(claims("x", "during-outage", "", time.Now())) {
			t.Error("a revocation that was not recorded is in force here only")
		}
		if n := logs.FilterMessageSnippet("store unavailable: every revocation already seen stays in force").Len(); n != 1 {
			t.Errorf("%d log lines say the store is unavailable once ready, want 1", n)
		}
	})
	t.Run("it reconnects by itself and resyncs", func(t *testing.T) {
		if err := b.Memory.Revoke(ctx, NewRevocation(KindUser, "bob@corp.example", time.Now(), time.Hour)); err != nil {
			t.Fatal(err)
		}
		b.down.Store(false)
		eventually(t, "back up", s.Up)
		eventually(t, "the revocation made during the outage arrives", func() bool {
			return s.Revoked(claims("x", "y", "bob@corp.example", time.Now().Add(-time.Hour)))
		})
		if got := testutil.ToFloat64(up); got != 1 {
			t.Errorf("extauthz_store_up = %v, want 1", got)
		}
		// Once after the outage at start-up, once now.
		if n := logs.FilterMessageSnippet("store available again").Len(); n != 2 {
			t.Errorf("%d log lines say the store is back, want 2", n)
		}
	})
	t.Run("the gauge is named extauthz_store_up", func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(up)
		n, err := testutil.GatherAndCount(reg, "extauthz_store_up")
		if err != nil || n != 1 {
			t.Errorf("gathered %d extauthz_store_up series (%v), want 1", n, err)
		}
	})
}

func TestStoreRevokeIsInForceLocallyAtOnce(t *testing.T) {
	s := New(&flaky{Memory: NewMemory(nil)}, Options{PollInterval: time.Hour, ResyncInterval: time.Hour})
	defer s.Close()
	ctx := context.Background()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		revoke func() error
		c      *identity.Claims
	}{
		{"signing out (revoking a sid)", func() error { return s.RevokeSID(ctx, "s1") }, claims("j", "s1", "a@corp.example", time.Now())},
		{"signing a user out everywhere", func() error { return s.RevokeUser(ctx, "Dave@corp.example") }, claims("j", "s", "dave@corp.example", time.Now().Add(-time.Minute))},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is in force on this replica as soon as it returns", func(t *testing.T) {
			if err := tt.revoke(); err != nil {
				t.Fatal(err)
			}
			if !s.Revoked(tt.c) {
				t.Error("not revoked")
			}
		})
	}
	t.Run("ending authenticate sessions is in force at once", func(t *testing.T) {
		if err := s.EndAuthSessions(ctx, "erin@corp.example"); err != nil {
			t.Fatal(err)
		}
		if !s.AuthSessionEnded("erin@corp.example", time.Now().Add(-time.Minute)) {
			t.Error("authenticate session not ended")
		}
	})
}

func TestRevocationCheck(t *testing.T) {
	tests := []struct {
		name string
		r    Revocation
		want string
	}{
		{"an unknown kind", Revocation{Kind: "email", ID: "x", At: t0, Expires: t0.Add(time.Hour)}, "not sid, jti, user or auth"},
		{"an empty id", Revocation{Kind: KindSID, At: t0, Expires: t0.Add(time.Hour)}, "names no id"},
		{"a huge id", Revocation{Kind: KindSID, ID: strings.Repeat("x", MaxIDLength+1), At: t0, Expires: t0.Add(time.Hour)}, "more than"},
		{"an expiry not after the revocation", Revocation{Kind: KindSID, ID: "x", At: t0, Expires: t0}, "not after"},
	}
	for _, tt := range tests {
		t.Run("it refuses "+tt.name, func(t *testing.T) {
			for _, b := range []Backend{NewMemory(nil)} {
				err := b.Revoke(context.Background(), tt.r)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: Revoke = %v, want an error saying %q", b.Describe(), err, tt.want)
				}
			}
		})
	}
}

func TestViewFoldsRecentRevocationsIntoItsBase(t *testing.T) {
	var v View
	v.init()
	v.add([]Revocation{NewRevocation(KindUser, "bob@corp.example", t0.Add(time.Minute), time.Hour)}, time.Time{})
	n := 3*maxRecent + 7
	for i := range n {
		v.add([]Revocation{NewRevocation(KindSID, fmt.Sprint("s", i), t0, time.Hour)}, time.Time{})
	}
	v.add([]Revocation{NewRevocation(KindUser, "bob@corp.example", t0, time.Hour)}, time.Time{})
	for i := range n {
		if !v.Revoked(claims("j", fmt.Sprint("s", i), "", t0)) {
			t.Fatalf("s%d was lost when the overlay was folded into the base", i)
		}
	}
	if got := v.Len(); got != n+1 {
		t.Errorf("Len = %d, want %d", got, n+1)
	}
	if !v.Revoked(claims("j", "x", "bob@corp.example", t0.Add(30*time.Second))) {
		t.Error("an earlier revocation of a user in the overlay shrank the later one in the base")
	}
	if s := v.cur.Load(); s.recent.size() > maxRecent {
		t.Errorf("overlay holds %d entries, more than %d", s.recent.size(), maxRecent)
	}
}

func TestOpen(t *testing.T) {
	tests := []struct {
		name, kind, conn string
		shared           bool
		err              string
	}{
		{"the default is the memory store", "", "", false, ""},
		{"memory is the memory store", "memory", "", false, ""},
		{"redis is a shared store", "redis", "redis://127.0.0.1:1/0", true, ""},
		{"redis with a bad connection string is an error", "redis", "redis+cluster://", false, "empty host"},
		{"an unknown type is an error", "etcd", "", false, "not memory or redis"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.kind, tt.conn, Options{PollInterval: time.Hour})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Open = %v, want an error saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Backend().Shared() != tt.shared {
				t.Errorf("Shared = %v, want %v", s.Backend().Shared(), tt.shared)
			}
		})
	}
}
