package check

import (
	"strings"
	"time"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
)

// Replay is whether an Answer may be given again, without deciding, to a
// request identical to the one it answered: the same route and the same
// header lines, byte for byte, except the value of x-request-id. The dynamic
// module's answer cache (cmd/extauthz-module, docs/module.md) replays
// answers by this, in front of Answer; nothing else does.
//
// Replaying must be the same as answering, so an answer is replayable only
// when answering it again would give the same answer and have no effect
// beside it:
//   - an allow: denials are logged (and the not-ready 503 is no verdict);
//   - on a token that does not ask to impersonate: those are audited on
//     every request, allowed or not;
//   - by a server without Observe: that counts every answer (metrics);
//   - with at most one session cookie in the request: with several, which
//     one wins can change as they come into and out of validity, a time
//     bound no single exp says.
//
// The answer's headers never depend on x-request-id's value (only a denial's
// body names it), and an allow logs nothing, so the request id may differ.
//
// Until when: the token's exp (Go refuses the token after it; its leeway is
// not granted to replays), the assertion's reuse bound (AssertionCache: from
// then on a fresh one is signed), and MaxReplay in any case. Anything else
// a decision reads (the policy, the keys, the store's revocations, whether
// the server is ready) is not bounded here: whoever replays must drop every
// replay when it changes (the module's generation, bumped by OnChange).
type Replay struct {
	OK       bool
	NotAfter time.Time
}

// MaxReplay bounds how long any answer is replayed, a backstop for an allow
// with no other time bound (a public route, a token without exp): the
// assertion's own reuse bound for a fresh signing (AssertionCache), so that
// it never cuts short an answer with an assertion.
const MaxReplay = identity.AssertionLifetime / 2

// replay sets a.Replay for the decision d, made with snap on a request with
// headers at now.
func (s *Server) replay(d *decision.Decision, snap *Snapshot, headers RequestHeaders, now time.Time, a *Answer) {
	if !d.Allowed() || !a.Allowed || d.AsksToImpersonate() || s.Observe != nil {
		return
	}
	if d.Source == identity.SourceCookie &&
		strings.Count(headers.Get(identity.HeaderCookie), snap.Engine.CookieName+"=") > 1 {
		return
	}
	until := now.Add(MaxReplay)
	if c := d.Claims; c != nil && c.ExpiresAt != nil && c.ExpiresAt.Time.Before(until) {
		until = c.ExpiresAt.Time
	}
	if !a.replayUntil.IsZero() && a.replayUntil.Before(until) {
		until = a.replayUntil
	}
	if !until.After(now) {
		return
	}
	a.Replay = Replay{OK: true, NotAfter: until}
}
