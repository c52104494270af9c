package check

import (
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/audit"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/negotiate"
	"github.com/extauthz/extauthz/internal/requestid"
)

// Request is one HTTP request as an Envoy adapter reads it, whichever way
// Envoy asks: the ext_authz Check (this package's gRPC server) or the
// dynamic module that runs inside Envoy (cmd/extauthz-module). Both build
// one and call Server.Answer, so the two deployments cannot answer
// differently.
type Request struct {
	// RouteName is the policy route Envoy's route names, if any: the
	// context extension "route" for Check, route metadata for the module.
	RouteName string
	Host      string // :authority; empty is a bad request
	Path      string // with the query
	Method    string
	Scheme    string // of the request Envoy received; sign-in redirects use it
	// ID is Envoy's request id when the headers do not carry one.
	ID string
	// Headers are the request's headers, one entry per lower-case name, a
	// repeated name joined as Check joins Envoy's raw header_map. Answer
	// reads, never keeps, them.
	Headers RequestHeaders

	// headerIndex is AddHeader's index of Headers once they are many.
	headerIndex map[string]int
}

// AddHeader adds one request header line to r.Headers: the name lower-cased,
// a repeated name joined to the earlier lines as Check joins Envoy's raw
// header_map. Headers may start empty with room to reuse (the module pools
// them); once they are many AddHeader indexes them, so lines are added only
// through it.
func (r *Request) AddHeader(name, value string) {
	if len(r.headerIndex) != len(r.Headers) {
		r.headerIndex = nil // Headers changed under it: scan instead
	}
	l := headerList{h: r.Headers, index: r.headerIndex}
	l.join(strings.ToLower(name), value)
	r.Headers, r.headerIndex = l.h, l.index
}

// Header is one header name and value of an Answer.
type Header struct{ Name, Value string }

// Answer is what Envoy must do with a request: let it upstream with headers
// set (each overwriting any copy the client sent) and removed, or answer it
// here with Status, Headers and Body. A Status of 503 is no verdict but an
// outage (the server is not ready, see NotReady): Check makes it gRPC
// UNAVAILABLE.
//
// An Answer is built in place (Server.Answer returns a pointer): its first
// headers and removals live in the Answer itself, so that Check answers in
// one allocation, the CheckResponse beside the Answer (issue 19). A copy
// shares that storage: read one, never append to it.
type Answer struct {
	Allowed bool
	// Headers are set on the upstream request when Allowed, else sent with
	// the denial.
	Headers []Header
	// Remove are the request headers removed before it goes upstream.
	Remove []string
	Status int    // a denial's HTTP status
	Body   string // a denial's body
	// Reason is the detailed reason, for operators only: Check puts it in
	// the gRPC status message, which Envoy never sends to the client.
	Reason string

	// Replay says whether this answer may be given again, without deciding,
	// to a request identical to this one (see Replay).
	Replay Replay

	// replayUntil is the assertion's reuse bound, when one was set.
	replayUntil time.Time

	headerBuf [inlineHeaders]Header
	removeBuf [inlineRemovals]string
}

// inlineHeaders is how many headers an Answer holds without allocating
// again: the assertion and two claim headers (the bundled config's email and
// groups) of an allow, or a denial's three or four (a not-ready 503's
// four). Each costs the Answer and
// the CheckResponse beside it about 200 bytes, so more would allocate bytes
// most answers never use.
const inlineHeaders = 4

// inlineRemovals is how many removals an Answer holds without allocating:
// the client's authorization and a stray identity header.
const inlineRemovals = 2

// room makes room for n headers: in the Answer itself when they fit, else in
// one allocation of exactly n.
func (a *Answer) room(n int) {
	if n <= inlineHeaders {
		a.Headers = a.headerBuf[:0]
		return
	}
	a.Headers = make([]Header, 0, n)
}

// setHeader adds a header to set (on the upstream request, or on the denial).
func (a *Answer) setHeader(name, value string) {
	if a.Headers == nil {
		a.Headers = a.headerBuf[:0]
	}
	a.Headers = append(a.Headers, Header{name, value})
}

// isSet reports whether name (as spelled) is among the headers set.
func (a *Answer) isSet(name string) bool {
	for _, h := range a.Headers {
		if h.Name == name {
			return true
		}
	}
	return false
}

// remove adds a request header to remove before the request goes upstream.
func (a *Answer) remove(name string) {
	if a.Remove == nil {
		a.Remove = a.removeBuf[:0]
	}
	a.Remove = append(a.Remove, name)
}

// Answer decides r with the snapshot in force and maps the decision to an
// Answer; it logs denials, audits and observes like every Check. While the
// server is not ready (NotReady) it decides nothing and answers 503.
func (s *Server) Answer(r *Request) *Answer {
	a := new(Answer)
	s.answer(r, a)
	return a
}

// answer is Answer into a, which is zero: Check builds it inside its
// CheckResponse's allocation.
func (s *Server) answer(r *Request, a *Answer) {
	start := s.now()
	requestID := requestid.Pick(r.Headers.Get("x-request-id"), r.ID)
	if why := s.notReady.Load(); why != nil {
		s.notReadyAnswer(*why, r.Headers, requestID, a)
		if s.Observe != nil {
			s.Observe(notReadyDecision(), s.now().Sub(start))
		}
		return
	}
	snap := s.snap.Load()
	if r.Host == "" {
		d := &decision.Decision{Kind: decision.KindBadRequest, Status: decision.StatusBadRequest, Reason: decision.ReasonBadRequest}
		snap.deny(d, negotiate.Text, requestID, r, a)
		s.logDenial(d, decision.Request{}, requestID, start)
		if s.Observe != nil {
			s.Observe(d, s.now().Sub(start))
		}
		return
	}
	// The closure below holds the list, not r: holding r would move every
	// Check's Request to the heap with the closure.
	headers := r.Headers
	format := negotiate.Preferred(headers.Get("accept"))
	in := decision.Request{
		RouteName: r.RouteName,
		Host:      r.Host,
		Path:      r.Path,
		Method:    r.Method,
		Header:    headers.Get,
		Browser:   format == negotiate.HTML,
	}
	d := snap.Engine.Decide(in, start)
	if d.Allowed() {
		if err := snap.allow(&d, r, start, a); err != nil {
			// Fail closed: an assertion we cannot sign is never an allow.
			s.log.Error("building allow response", zap.Error(err), zap.String("request_id", requestID))
			d.Fail()
			*a = Answer{}
		}
	}
	if !d.Allowed() {
		snap.deny(&d, format, requestID, r, a)
		s.logDenial(&d, in, requestID, start)
		s.debugDenial(&d, in, snap, requestID)
	}
	// The answer is final: the audit log records what the client got.
	s.audit.Decision(&d, audit.Request{Host: in.Host, Method: in.Method, Path: in.Path, RequestID: requestID})
	if s.Observe != nil {
		s.Observe(&d, s.now().Sub(start))
	}
	s.replay(&d, snap, headers, start, a)
}

// debugDenial logs a denial's detail at debug: the reason sentence, and for a
// token minted for another issuer or host, what this sidecar expects (never
// the token).
func (s *Server) debugDenial(d *decision.Decision, in decision.Request, snap *Snapshot, requestID string) {
	if ce := s.log.Check(zap.DebugLevel, "denied"); ce != nil {
		ce.Write(zap.Int("status", int(d.Status)), zap.String("reason", d.Reason),
			zap.String("host", in.Host), zap.String("path", audit.PathOnly(in.Path)), zap.String("request_id", requestID))
	}
	if d.Cause != identity.CauseIssuer && d.Cause != identity.CauseAudience {
		return
	}
	if ce := s.log.Check(zap.DebugLevel, "token refused: minted for another issuer or host"); ce != nil {
		expected := snap.Issuer
		if expected == "" {
			expected = "any (authenticate_service_url is unset)"
		}
		ce.Write(zap.String("cause", d.Cause.String()), zap.String("expected_issuer", expected),
			zap.String("request_host", identity.HostWithoutPort(in.Host)), zap.String("request_id", requestID))
	}
}

// checkRequest reads a CheckRequest into a Request.
func checkRequest(req *authv3.CheckRequest) Request {
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	return Request{
		RouteName: req.GetAttributes().GetContextExtensions()["route"],
		Host:      httpReq.GetHost(),
		Path:      httpReq.GetPath(),
		Method:    httpReq.GetMethod(),
		Scheme:    httpReq.GetScheme(),
		ID:        httpReq.GetId(),
		// From here on, headers are read only through this list, whichever
		// field Envoy filled.
		Headers: requestHeaders(httpReq),
	}
}
