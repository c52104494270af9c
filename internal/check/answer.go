package check

import (
	"net/http"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.uber.org/zap"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

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
	// Headers are the request's headers by lower-case name, a repeated name
	// joined as joinHeader does. Answer reads, never keeps, them.
	Headers map[string]string
}

// AddHeader adds one request header line to r.Headers: the name lower-cased,
// a repeated name joined to the earlier lines as Check joins Envoy's raw
// header_map.
func (r *Request) AddHeader(name, value string) {
	if r.Headers == nil {
		r.Headers = make(map[string]string, 16)
	}
	joinHeader(r.Headers, strings.ToLower(name), value)
}

// Header is one header name and value of an Answer.
type Header struct{ Name, Value string }

// Answer is what Envoy must do with a request: let it upstream with headers
// set (each overwriting any copy the client sent) and removed, or answer it
// here with Status, Headers and Body.
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
}

// Answer decides r with the snapshot in force and maps the decision to an
// Answer; it logs denials, audits and observes like every Check.
func (s *Server) Answer(r *Request) Answer {
	start := s.now()
	snap := s.snap.Load()
	requestID := requestid.Pick(r.Headers["x-request-id"], r.ID)
	if r.Host == "" {
		d := &decision.Decision{Kind: decision.KindBadRequest, Status: decision.StatusBadRequest, Reason: decision.ReasonBadRequest}
		a := snap.deny(d, negotiate.Text, requestID, r)
		s.logDenial(d, decision.Request{}, requestID, start)
		if s.Observe != nil {
			s.Observe(d, s.now().Sub(start))
		}
		return a
	}
	headers := r.Headers
	format := negotiate.Preferred(headers["accept"])
	in := decision.Request{
		RouteName: r.RouteName,
		Host:      r.Host,
		Path:      r.Path,
		Method:    r.Method,
		Header:    func(name string) string { return headers[name] },
		Browser:   format == negotiate.HTML,
	}
	d := snap.Engine.Decide(in, start)
	var a Answer
	if d.Allowed() {
		var err error
		a, err = snap.allow(&d, r, start)
		if err != nil {
			// Fail closed: an assertion we cannot sign is never an allow.
			s.log.Error("building allow response", zap.Error(err), zap.String("request_id", requestID))
			d.Fail()
		}
	}
	if !d.Allowed() {
		a = snap.deny(&d, format, requestID, r)
		s.logDenial(&d, in, requestID, start)
		s.debugDenial(&d, in, snap, requestID)
	}
	// The answer is final: the audit log records what the client got.
	s.audit.Decision(&d, audit.Request{Host: in.Host, Method: in.Method, Path: in.Path, RequestID: requestID})
	if s.Observe != nil {
		s.Observe(&d, s.now().Sub(start))
	}
	return a
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
		// From here on, headers are read only through this map, whichever
		// field Envoy filled.
		Headers: requestHeaders(httpReq),
	}
}

// checkResponse is a as ext_authz's CheckResponse. Every header it sets
// overwrites: Envoy 1.40 reads append_action, and its zero value would keep
// a client-sent copy beside ours.
func (a *Answer) checkResponse() *authv3.CheckResponse {
	// Three allocations for all the headers, not two per header.
	headers := make([]*corev3.HeaderValueOption, len(a.Headers))
	opts := make([]corev3.HeaderValueOption, len(a.Headers))
	values := make([]corev3.HeaderValue, len(a.Headers))
	for i, h := range a.Headers {
		values[i].Key, values[i].Value = h.Name, h.Value
		opts[i].Header, opts[i].AppendAction = &values[i], corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		headers[i] = &opts[i]
	}
	if a.Allowed {
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: headers, HeadersToRemove: a.Remove,
			}},
		}
	}
	code := codes.PermissionDenied
	switch a.Status {
	case int(decision.StatusSignIn), int(decision.StatusUnauthorized):
		code = codes.Unauthenticated
	case http.StatusServiceUnavailable: // not deciding (yet): an outage, not a verdict
		code = codes.Unavailable
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code), Message: a.Reason},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(a.Status)},
			Headers: headers,
			Body:    a.Body,
		}},
	}
}
