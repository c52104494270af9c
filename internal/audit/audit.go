// Package audit writes the audit log, on a logger named "audit": every
// Check on a token that asks to impersonate, every session token the pages
// put in a browser, and every impersonation started, stopped, ended or
// refused, every policy preview, every sign-out, and every "sign this user
// out everywhere", done or refused. Events are built here only, so their
// names and fields are one list. No entry ever holds a token: a session is
// named by its jti and session id, what revoked_token_ids takes.
package audit

import (
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
)

// Event names.
const (
	ImpersonatedRequest  = "impersonated_request"  // a Check on a live impersonation
	ImpersonationEnded   = "impersonation_ended"   // an impersonation that ran out (Check, or the dashboard's re-issue)
	ImpersonationStarted = "impersonation_started" // the dashboard's sign-in-as
	ImpersonationStopped = "impersonation_stopped"
	ImpersonationRefused = "impersonation_refused"
	PolicyPreview        = "policy_preview"
	SessionIssued        = "session_issued"
	SessionSignedOut     = "session_signed_out"         // sign-out revoked a session id
	UserSignedOut        = "user_signed_out_everywhere" // an administrator revoked every session of a user
	UserSignOutRefused   = "user_sign_out_refused"
)

// Log writes audit entries. A nil *Log writes nothing.
type Log struct{ z *zap.Logger }

// New returns the audit log of log: log.Named("audit").
func New(log *zap.Logger) *Log { return &Log{z: log.Named("audit")} }

// Request is where a page or Check request came from.
type Request struct {
	Host, Method, Path, RequestID string
}

// Decision records a final decision on a token that asks to impersonate:
// callers write it once the answer is final, so a decision that became a 500
// is recorded as the 500 the client got.
func (l *Log) Decision(d *decision.Decision, r Request) {
	if l == nil || !d.AsksToImpersonate() {
		return
	}
	outcome := "deny"
	if d.Allowed() {
		outcome = "allow"
	}
	event := ImpersonatedRequest
	if d.Impersonation.Ended {
		event = ImpersonationEnded
	}
	routeName := ""
	if d.Route != nil {
		routeName = d.Route.Name
	}
	c := d.Claims
	l.z.Info(event,
		zap.String("actor_email", c.Email),
		zap.String("actor_user", c.User),
		zap.String("impersonated_email", c.ImpersonateEmail),
		zap.Strings("impersonated_groups", c.ImpersonateGroups),
		zap.String("access", d.Impersonation.Access),
		zap.String("impersonation_reason", c.ImpersonateReason),
		zap.String("route", routeName),
		zap.String("host", r.Host),
		zap.String("method", r.Method),
		zap.String("path", PathOnly(r.Path)),
		zap.String("decision", outcome),
		zap.Int("status", int(d.Status)),
		zap.String("reason", d.Reason),
		zap.String("token_id", c.ID),
		// The id revoked_token_ids takes to end this whole session.
		zap.String("sid", c.SessionID()),
		zap.String("request_id", r.RequestID),
	)
}

// Issued records a session token, whose claims are c, put in a browser for
// why (sign_in, pasted_token, refresh, impersonation_started, ...).
func (l *Log) Issued(c *identity.Claims, why string, r Request) {
	if l == nil {
		return
	}
	fields := []zap.Field{
		zap.String("jti", c.ID),
		zap.String("sid", c.SessionID()),
		zap.String("email", c.Email),
		zap.String("why", why),
		zap.String("host", identity.HostWithoutPort(r.Host)),
		zap.Time("expires_at", c.ExpiresAt.Time),
		zap.String("request_id", r.RequestID),
	}
	if c.Impersonating() {
		fields = append(fields, zap.String("impersonated_email", c.ImpersonateEmail),
			zap.Strings("impersonated_groups", c.ImpersonateGroups))
	}
	l.z.Info(SessionIssued, fields...)
}

// Target is whom an impersonation is of, and how.
type Target struct {
	Email  string
	Groups []string
	Access string
	Reason string
}

// Impersonation records event (ImpersonationStarted, Stopped, Ended or
// Refused) by actor on target. extra names the session involved (token_id:
// the jti of the token that now carries the change, and its sid), the end,
// or the refusal.
func (l *Log) Impersonation(event string, actor *identity.Claims, t Target, r Request, extra ...zap.Field) {
	l.byActor(event, actor, r, []zap.Field{
		zap.String("impersonated_email", t.Email),
		zap.Strings("impersonated_groups", nonNil(t.Groups)),
		zap.String("access", t.Access),
		zap.String("impersonation_reason", t.Reason),
	}, extra...)
}

// byActor records event caused by actor (an administrator's action on the
// pages): who, then what (fields), then where, then extra. The actor's
// events share this order so one query reads them all.
func (l *Log) byActor(event string, actor *identity.Claims, r Request, what []zap.Field, extra ...zap.Field) {
	if l == nil {
		return
	}
	fields := make([]zap.Field, 0, 4+len(what)+len(extra))
	fields = append(fields, zap.String("actor_email", actor.Email), zap.String("actor_user", actor.User))
	fields = append(fields, what...)
	fields = append(fields, zap.String("host", r.Host), zap.String("request_id", r.RequestID))
	l.z.Info(event, append(fields, extra...)...)
}

// Session names the session that now carries a change.
func Session(c *identity.Claims) []zap.Field {
	return []zap.Field{zap.String("token_id", c.ID), zap.String("sid", c.SessionID())}
}

// Ended is when an impersonation ended.
func Ended(t time.Time) zap.Field { return zap.Time("impersonation_expires_at", t) }

// Refusal is why an impersonation or a preview was refused.
func Refusal(why string) zap.Field { return zap.String("refusal", why) }

// Preview records an administrator's policy preview of email and groups,
// allowed on allowed of routes routes.
func (l *Log) Preview(actor *identity.Claims, email string, groups []string, allowed, routes int, r Request) {
	l.byActor(PolicyPreview, actor, r, []zap.Field{
		zap.String("preview_email", email),
		zap.Strings("preview_groups", nonNil(groups)),
		zap.Int("routes_allowed", allowed),
		zap.Int("routes", routes),
	})
}

// PreviewRefused records a preview asked by someone who is not an administrator.
func (l *Log) PreviewRefused(actor *identity.Claims, why string, r Request) {
	l.byActor(PolicyPreview, actor, r, nil, Refusal(why))
}

// PathOnly drops the query, which may carry secrets that do not belong in logs.
func PathOnly(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// SignedOut records a sign-out that revoked c's session id on every replica.
func (l *Log) SignedOut(c *identity.Claims, r Request) {
	if l == nil {
		return
	}
	l.z.Info(SessionSignedOut, append(Session(c),
		zap.String("email", c.Email),
		zap.String("host", r.Host),
		zap.String("request_id", r.RequestID))...)
}

// UserRevoked records event (UserSignedOut or UserSignOutRefused) by actor
// on the user with email; extra says why a refusal was.
func (l *Log) UserRevoked(event string, actor *identity.Claims, email string, r Request, extra ...zap.Field) {
	l.byActor(event, actor, r, []zap.Field{zap.String("revoked_email", email)}, extra...)
}
