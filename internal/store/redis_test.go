package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/store/redistest"
)

// These tests run against a real redis-server (see redistest): no mock.

func newRedis(t *testing.T, url string) *Redis {
	t.Helper()
	b, err := NewRedis(url, Timeouts{Dial: 300 * time.Millisecond, Read: 300 * time.Millisecond, Write: 300 * time.Millisecond, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// replica is a Store on its own client of the server, as a sidecar replica has.
func replica(t *testing.T, srv *redistest.Server, opt Options) *Store {
	t.Helper()
	s := New(newRedis(t, srv.URL()), opt)
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func within(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(200 * time.Microsecond)
	}
	return time.Since(start)
}

func TestRedisReplicasSeeEachOthersRevocations(t *testing.T) {
	srv := redistest.Start(t)
	a, b := replica(t, srv, Options{}), replica(t, srv, Options{})
	ctx := context.Background()
	tests := []struct {
		name     string
		from, to *Store
		revoke   func(s *Store) error
		revoked  func(s *Store) bool
	}{
		{"a sid revoked on one replica is refused on the other within 1 s", a, b,
			func(s *Store) error { return s.RevokeSID(ctx, "sid-a") },
			func(s *Store) bool { return s.Revoked(claims("j", "sid-a", "x@corp.example", time.Now())) }},
		{"a jti revoked on the other replica is refused on the first within 1 s", b, a,
			func(s *Store) error { return s.Revoke(ctx, NewRevocation(KindJTI, "jti-b", time.Now(), time.Hour)) },
			func(s *Store) bool { return s.Revoked(claims("jti-b", "s", "x@corp.example", time.Now())) }},
		{"a user signed out everywhere on one replica is refused on the other within 1 s", a, b,
			func(s *Store) error { return s.RevokeUser(ctx, "bob@corp.example") },
			func(s *Store) bool {
				return s.Revoked(claims("j", "s", "bob@corp.example", time.Now().Add(-time.Minute)))
			}},
		{"an authenticate session ended on one replica is ended on the other within 1 s", b, a,
			func(s *Store) error { return s.EndAuthSessions(ctx, "carol@corp.example") },
			func(s *Store) bool { return s.AuthSessionEnded("carol@corp.example", time.Now().Add(-time.Minute)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.revoked(tt.to) {
				t.Fatal("revoked before it was revoked")
			}
			if err := tt.revoke(tt.from); err != nil {
				t.Fatal(err)
			}
			within(t, time.Second, "the other replica refuses it", func() bool { return tt.revoked(tt.to) })
		})
	}
	t.Run("a replica started afterwards reads every revocation before it is ready", func(t *testing.T) {
		c := replica(t, srv, Options{})
		if !c.Revoked(claims("j", "sid-a", "", time.Now())) || !c.Revoked(claims("jti-b", "", "", time.Now())) ||
			!c.Revoked(claims("j", "s", "bob@corp.example", time.Now().Add(-time.Minute))) {
			t.Error("a revocation is missing from a new replica's first read")
		}
	})
}

// revokeSilently writes a revocation as Revoke does but announces it on a
// channel nobody listens to: the pub/sub message is lost.
func revokeSilently(t *testing.T, b *Redis, r Revocation) {
	t.Helper()
	keys := slices.Clone(revokeKeys)
	keys[4] = KeyPrefix + "nowhere"
	if err := revokeScript.Run(context.Background(), b.c, keys, recordPrefix+revocationKey(r), r.At.Unix(), r.Expires.Unix(), changeLogLength).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestRedisMissedMessageIsRepaired(t *testing.T) {
	srv := redistest.Start(t)
	writer := newRedis(t, srv.URL())
	defer writer.Close()
	tests := []struct {
		name string
		opt  Options
	}{
		{"polling the change counter repairs it within 1 s", Options{}},
		{"the periodic full read repairs it without polling", Options{PollInterval: time.Hour, ResyncInterval: 100 * time.Millisecond}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := replica(t, srv, tt.opt)
			sid := "missed-" + strconv.Itoa(i)
			revokeSilently(t, writer, NewRevocation(KindSID, sid, time.Now(), time.Hour))
			within(t, time.Second, "the revocation arrives", func() bool { return s.Revoked(claims("j", sid, "", time.Now())) })
		})
	}
}

func TestRedisKilledAndRestarted(t *testing.T) {
	srv := redistest.Start(t)
	a, b := replica(t, srv, Options{PollInterval: 50 * time.Millisecond}), replica(t, srv, Options{PollInterval: 50 * time.Millisecond})
	ctx := context.Background()
	if err := a.RevokeSID(ctx, "known"); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "b sees the revocation", func() bool { return b.Revoked(claims("j", "known", "", time.Now())) })

	srv.Kill()
	t.Run("while Redis is down both replicas notice and keep every known revocation", func(t *testing.T) {
		for _, s := range []*Store{a, b} {
			within(t, 5*time.Second, "the outage is noticed", func() bool { return !s.Up() })
			if !s.Revoked(claims("j", "known", "", time.Now())) || !s.Ready() {
				t.Error("a known revocation is lost, or the replica stopped being ready, during the outage")
			}
		}
	})
	t.Run("while Redis is down writes fail", func(t *testing.T) {
		if err := a.RevokeSID(ctx, "lost"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("RevokeSID = %v, want ErrUnavailable", err)
		}
		if err := a.Use(ctx, "handoff", time.Now().Add(time.Minute)); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Use = %v, want ErrUnavailable: a handoff must not be taken as unused", err)
		}
		if err := a.Issue(ctx, "user"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Issue = %v, want ErrUnavailable", err)
		}
	})
	srv.Restart() // empty: nothing was saved
	t.Run("once Redis is back, the replicas reconnect, keep what they knew and receive a new revocation", func(t *testing.T) {
		for _, s := range []*Store{a, b} {
			within(t, 5*time.Second, "reconnected", s.Up)
		}
		if err := b.RevokeSID(ctx, "after"); err != nil {
			t.Fatal(err)
		}
		within(t, time.Second, "a sees the new revocation", func() bool { return a.Revoked(claims("j", "after", "", time.Now())) })
		for _, s := range []*Store{a, b} {
			if !s.Revoked(claims("j", "known", "", time.Now())) {
				t.Error("a revocation known before the restart was dropped when the empty Redis was read")
			}
		}
	})
}

func TestRedisHandoffLedgerAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedis(t, srv.URL()), newRedis(t, srv.URL())
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)

	t.Run("a handoff redeemed on one replica is refused on the other", func(t *testing.T) {
		if err := a.Use(ctx, "handoff-1", exp); err != nil {
			t.Fatal(err)
		}
		if err := b.Use(ctx, "handoff-1", exp); !errors.Is(err, ErrHandoffUsed) {
			t.Errorf("Use on the other replica = %v, want ErrHandoffUsed", err)
		}
	})
	t.Run("of many replicas redeeming one handoff at once, exactly one succeeds", func(t *testing.T) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := []*Redis{a, b}[i%2].Use(ctx, "handoff-race", exp); err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if ok != 1 {
			t.Errorf("%d redeemed it, want 1", ok)
		}
	})
	t.Run("a used handoff is kept only until it expires", func(t *testing.T) {
		ttl, err := srv.Client().TTL(ctx, keyHandoffUsed+"handoff-1").Result()
		if err != nil || ttl <= 0 || ttl > time.Minute+time.Second {
			t.Errorf("TTL = %v (%v), want at most the handoff's minute", ttl, err)
		}
	})
	t.Run("the per-user bound holds across replicas", func(t *testing.T) {
		for i := range HandoffsPerUserPerMinute {
			if err := []*Redis{a, b}[i%2].Issue(ctx, "mallory"); err != nil {
				t.Fatalf("handoff %d refused: %v", i, err)
			}
		}
		for _, r := range []*Redis{a, b} {
			if err := r.Issue(ctx, "mallory"); !errors.Is(err, ErrHandoffRateLimited) {
				t.Errorf("Issue past the bound = %v, want ErrHandoffRateLimited", err)
			}
		}
		if err := b.Issue(ctx, "alice"); err != nil {
			t.Errorf("another user refused: %v", err)
		}
		keys, err := srv.Client().Keys(ctx, keyHandoffIssued+"*").Result()
		if err != nil || len(keys) != 2 {
			t.Fatalf("issue counters %v (%v), want one per user", keys, err)
		}
		for _, k := range keys {
			if ttl := srv.Client().PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Minute {
				t.Errorf("counter %s expires in %v, want within the minute", k, ttl)
			}
		}
	})
}

func TestRedisRevocationsExpire(t *testing.T) {
	srv := redistest.Start(t)
	b := newRedis(t, srv.URL())
	defer b.Close()
	ctx := context.Background()
	now := time.Now()
	for i := range 2500 { // more than one sweep batch
		if err := b.Revoke(ctx, NewRevocation(KindSID, fmt.Sprint("short-", i), now, time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Revoke(ctx, NewRevocation(KindUser, "bob@corp.example", now, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := b.Sweep(ctx, now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	t.Run("after the ttl the records, the change log and the expiry index hold only what is left", func(t *testing.T) {
		for _, k := range []string{keyRecords, keyChanges, keyExpiry} {
			var n int64
			if k == keyRecords {
				n = c.HLen(ctx, k).Val()
			} else {
				n = c.ZCard(ctx, k).Val()
			}
			if n != 1 {
				t.Errorf("%s holds %d entries, want 1", k, n)
			}
		}
	})
	t.Run("a full read returns only the revocation still in force", func(t *testing.T) {
		_, revs, err := b.Load(ctx)
		if err != nil || len(revs) != 1 || revs[0].Kind != KindUser {
			t.Errorf("Load = %v, %v", revs, err)
		}
	})
}

func TestRedisChangeLogIsBounded(t *testing.T) {
	srv := redistest.Start(t)
	b := newRedis(t, srv.URL())
	defer b.Close()
	b.logLength = 10
	ctx := context.Background()
	pos, _, err := b.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		if err := b.Revoke(ctx, NewRevocation(KindSID, fmt.Sprint("s", i), time.Now(), time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("the change log keeps only the last changes", func(t *testing.T) {
		if n := srv.Client().ZCard(ctx, keyChanges).Val(); n != 10 {
			t.Errorf("change log holds %d entries, want 10", n)
		}
	})
	t.Run("a reader further behind than the log reads everything again", func(t *testing.T) {
		if _, _, err := b.Since(ctx, pos); !errors.Is(err, ErrStale) {
			t.Errorf("Since = %v, want ErrStale", err)
		}
	})
	t.Run("a reader within the log gets just what changed since", func(t *testing.T) {
		_, revs, err := b.Since(ctx, Position{Epoch: pos.Epoch, Version: 20})
		if err != nil || len(revs) != 5 {
			t.Errorf("Since = %d revocations (%v), want 5", len(revs), err)
		}
	})
}

// TestRedisPropagation measures how long a revocation made on one replica
// takes to be in force on another (median and p99 go in docs/store.md; set
// EXTAUTHZ_MEASURE=1 for 1000 revocations instead of 50).
func TestRedisPropagation(t *testing.T) {
	srv := redistest.Start(t)
	a, b := replica(t, srv, Options{}), replica(t, srv, Options{})
	n := 50
	if os.Getenv("EXTAUTHZ_MEASURE") != "" {
		n = 1000
	}
	ctx := context.Background()
	d := make([]time.Duration, 0, n)
	for i := range n {
		sid := fmt.Sprint("prop-", i)
		start := time.Now()
		if err := a.RevokeSID(ctx, sid); err != nil {
			t.Fatal(err)
		}
		within(t, time.Second, "propagated", func() bool { return b.Revoked(claims("j", sid, "", time.Now())) })
		d = append(d, time.Since(start))
	}
	slices.Sort(d)
	t.Logf("propagation over %d revocations (Revoke called on one replica until in force on the other): median %v, p99 %v, max %v",
		n, d[n/2], d[n*99/100], d[n-1])
}

// TestRedisMemory bounds what revocations cost Redis; with
// EXTAUTHZ_MEASURE=1 it records 100k (the figure in docs/store.md).
func TestRedisMemory(t *testing.T) {
	srv := redistest.Start(t)
	b := newRedis(t, srv.URL())
	defer b.Close()
	ctx := context.Background()
	n := 5000
	if os.Getenv("EXTAUTHZ_MEASURE") != "" {
		n = 100_000
	}
	before, err := srv.UsedMemory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := revokeScript.Load(ctx, b.c).Err(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 1000 {
		p := b.c.Pipeline()
		for j := i; j < min(i+1000, n); j++ {
			// A session id as the sidecar makes them: 22 base64url characters.
			id := fmt.Sprintf("%022x", j)
			revokeScript.EvalSha(ctx, p, revokeKeys, recordPrefix+"sid/"+id, now.Unix(), now.Add(DefaultTTL).Unix(), changeLogLength)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	after, err := srv.UsedMemory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	per := float64(after-before) / float64(n)
	t.Logf("%d revocations: used_memory %d -> %d bytes (%.1f MiB more, %.0f bytes each)", n, before, after, float64(after-before)/(1<<20), per)
	if per > 600 {
		t.Errorf("%.0f bytes of Redis memory per revocation, want at most 600", per)
	}
}
