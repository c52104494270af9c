package check_test

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
)

// answerRequest is a request to Answer as the module reads one: the header
// lines ("name: value") in order, the pseudo-headers giving host and path.
func answerRequest(route, host, path string, lines ...string) *check.Request {
	r := &check.Request{RouteName: route, Host: host, Path: path, Method: "GET", Scheme: "https"}
	for _, l := range append([]string{":authority: " + host, ":path: " + path, ":method: GET", ":scheme: https"}, lines...) {
		k, v, _ := strings.Cut(l, ": ")
		r.AddHeader(k, v)
	}
	return r
}

// TestReplay: which answers the module's answer cache may replay, and until
// when (check.Replay).
func TestReplay(t *testing.T) {
	bobWith := func(mod func(*identity.Claims)) string {
		c := identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"},
			RegisteredClaims: jwt.RegisteredClaims{Subject: "u-bob"}}
		if mod != nil {
			mod(&c)
		}
		return mint(t, c)
	}
	expiresIn := func(d time.Duration) func(*identity.Claims) {
		return func(c *identity.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(d)) }
	}
	bob := bobWith(nil)
	aliceAsBob := mint(t, identity.Claims{Email: "alice@corp.example", Groups: []string{"admins"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u-alice", ID: "jti-1"},
		ImpersonateEmail: "bob@corp.example", ImpersonateGroups: []string{"engineering"}})
	for _, tc := range []struct {
		name       string
		route      string
		lines      []string
		notReady   bool
		observe    bool
		allowed    bool
		replayable bool
		until      time.Duration // from now, when replayable
	}{
		{"an allow with a session token is replayed until a fresh assertion would be signed", "app",
			[]string{"authorization: Pomerium " + bob}, false, false, true, true, check.MaxReplay},
		{"an allow is replayed no longer than its token's exp", "app",
			[]string{"authorization: Pomerium " + bobWith(expiresIn(30*time.Second))}, false, false, true, true, 30 * time.Second},
		{"a token past its exp, allowed within the leeway, is never replayed", "app",
			[]string{"authorization: Pomerium " + bobWith(expiresIn(-10*time.Second))}, false, false, true, false, 0},
		{"an allow without an assertion is replayed until the token's exp", "quiet",
			[]string{"authorization: Pomerium " + bobWith(expiresIn(40*time.Second))}, false, false, true, true, 40 * time.Second},
		{"a public route is replayed for MaxReplay", "public", nil, false, false, true, true, check.MaxReplay},
		{"a session cookie is replayed as a token is", "app",
			[]string{"cookie: theme=dark; _pomerium=" + bob}, false, false, true, true, check.MaxReplay},
		{"two session cookies are never replayed: which one wins changes with time", "app",
			[]string{"cookie: _pomerium=" + bob + "; _pomerium=" + bob}, false, false, true, false, 0},
		{"an impersonated allow is never replayed: each one is audited", "app",
			[]string{"authorization: Pomerium " + aliceAsBob}, false, false, true, false, 0},
		{"a denial by the policy is never replayed: each one is logged", "admin",
			[]string{"authorization: Pomerium " + bob}, false, false, false, false, 0},
		{"a request without a token is never replayed", "app", nil, false, false, false, false, 0},
		{"the not-ready 503 is never replayed", "app",
			[]string{"authorization: Pomerium " + bob}, true, false, false, false, 0},
		{"nothing is replayed by a server that observes every answer (metrics)", "app",
			[]string{"authorization: Pomerium " + bob}, false, true, true, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.notReady {
				f.srv.NotReady("the test")
			}
			if tc.observe {
				f.srv.Observe = func(*decision.Decision, time.Duration) {}
			}
			a := f.srv.Answer(answerRequest(tc.route, tc.route+".example.com", "/x", tc.lines...))
			if a.Allowed != tc.allowed {
				t.Fatalf("allowed %v (status %d %s), want %v", a.Allowed, a.Status, a.Reason, tc.allowed)
			}
			if a.Replay.OK != tc.replayable {
				t.Fatalf("replayable %v, want %v", a.Replay.OK, tc.replayable)
			}
			if tc.replayable && !a.Replay.NotAfter.Equal(now.Add(tc.until)) {
				t.Errorf("replayable until %v from now, want %v", a.Replay.NotAfter.Sub(now), tc.until)
			}
		})
	}
}

// TestReplayFollowsTheAssertionCache: an answer whose assertion came from
// the cache is replayed only until the cache would sign a new one, so a
// replay never carries an assertion Go would no longer hand out.
func TestReplayFollowsTheAssertionCache(t *testing.T) {
	f := newFixture(t)
	bob := mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u-bob"}})
	r := func() *check.Request {
		return answerRequest("app", "app.example.com", "/x", "authorization: Pomerium "+bob)
	}
	f.srv.Answer(r())
	f.srv.Answer(r()) // the second signing is cached: reused until now + AssertionLifetime/2
	f.setNow(now.Add(2 * time.Minute))
	a := f.srv.Answer(r())
	if want := now.Add(identity.AssertionLifetime / 2); !a.Replay.OK || !a.Replay.NotAfter.Equal(want) {
		t.Errorf("replay %+v, want until the cached assertion's reuse ends, %v", a.Replay, want)
	}
}

// TestReplayIgnoresTheRequestID: the module's cache keys requests without
// x-request-id's value (Envoy makes a new one per request), which is sound
// only if a replayable answer does not depend on it: the same headers set
// and removed, and nothing logged or audited either way.
func TestReplayIgnoresTheRequestID(t *testing.T) {
	f := newFixture(t)
	bob := mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u-bob"}})
	for _, route := range []string{"app", "quiet", "public"} {
		t.Run("on the "+route+" route", func(t *testing.T) {
			answer := func(id string) *check.Answer {
				return f.srv.Answer(answerRequest(route, route+".example.com", "/x", "authorization: Pomerium "+bob,
					"x-request-id: "+id, "x-pomerium-claim-email: ceo@corp.example", "cookie: _pomerium="+bob+"; theme=dark"))
			}
			answer("warm-1")
			answer("warm-2") // the assertion is cached from its second signing on
			logged := f.logs.Len()
			a, b := answer("req-a"), answer("req-b")
			if !a.Replay.OK || a.Replay != b.Replay {
				t.Fatalf("replay %+v and %+v, want replayable and equal", a.Replay, b.Replay)
			}
			if strings.Join(flat(a.Headers), "|") != strings.Join(flat(b.Headers), "|") ||
				strings.Join(a.Remove, "|") != strings.Join(b.Remove, "|") {
				t.Errorf("the request id changed the answer:\n%v %v\n%v %v", a.Headers, a.Remove, b.Headers, b.Remove)
			}
			if got := f.logs.Len() - logged; got != 0 {
				t.Errorf("a replayable answer logged %d lines: %v", got, f.logs.All()[logged:])
			}
		})
	}
}

func flat(hs []check.Header) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Name + ": " + h.Value
	}
	return out
}

// TestOnChange: the server calls OnChange after each change of what Answer
// decides with, once Answer sees it, so whoever keeps answers computed
// before can drop them.
func TestOnChange(t *testing.T) {
	f := newFixture(t)
	next := *f.srv.Snapshot()
	var seen []string
	f.srv.OnChange = func() {
		state := map[bool]string{true: "ready", false: "not ready"}[f.srv.IsReady()]
		if f.srv.Snapshot() == &next {
			state += " with the new snapshot"
		}
		seen = append(seen, state)
	}
	f.srv.Swap(&next)
	f.srv.NotReady("the test")
	f.srv.Ready()
	want := "ready with the new snapshot, not ready with the new snapshot, ready with the new snapshot"
	if got := strings.Join(seen, ", "); got != want {
		t.Errorf("OnChange saw %q, want it called after the swap, NotReady and Ready, each visible: %q", got, want)
	}
}
