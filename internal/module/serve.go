package module

import (
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/check"
)

// Stream is what the binding can do to the request Envoy is deciding: set or
// remove a request header before it goes upstream, or answer it locally.
type Stream interface {
	// SetHeader sets name to value on the request, replacing every copy.
	SetHeader(name, value string)
	// RemoveHeader removes every copy of name from the request.
	RemoveHeader(name string)
	// SendResponse answers the request with status, headers and body; Envoy
	// logs details as the response code details.
	SendResponse(status int, headers []check.Header, body, details string)
}

// Response code details of the module's local replies, for Envoy's access
// log (%RESPONSE_CODE_DETAILS%), as ext_authz logs ext_authz_denied.
const (
	DetailsDenied          = "extauthz_denied"
	DetailsUnavailable     = "extauthz_unavailable"
	DetailsInvalidMutation = "extauthz_invalid_mutation"
)

// validMutation reports the first header of a that Envoy must not write: a
// name that is not an HTTP token, or a value with NUL, CR or LF. Envoy's
// ext_authz checks the same (validate_mutations: a 500). Set through the
// module's ABI, such a value is only refused later, by the upstream codec
// (a 503 that reads as an outage), after the request was let through.
func validMutation(a *check.Answer) error {
	for _, h := range a.Headers {
		if !validName(h.Name) {
			return fmt.Errorf("header name %q is not an HTTP token", h.Name)
		}
		if hasControl(h.Value) {
			return fmt.Errorf("header %s: value with NUL, CR or LF", h.Name)
		}
	}
	for _, name := range a.Remove {
		if !validName(name) {
			return fmt.Errorf("header name %q is not an HTTP token", name)
		}
	}
	return nil
}

// hasControl reports whether v holds NUL, CR or LF. Three IndexByte scans
// (vectorized) beat ContainsAny's byte loop on the long values an answer
// carries (the assertion), and this runs on every allowed request.
func hasControl(v string) bool {
	return strings.IndexByte(v, '\n') >= 0 || strings.IndexByte(v, '\r') >= 0 || strings.IndexByte(v, 0) >= 0
}

// validName reports whether name is an HTTP token (RFC 9110 section 5.6.2).
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Serve decides the request whose header lines r holds (AddHeader; the
// pseudo-headers give host, path, method and scheme, as Envoy's ext_authz
// reads them) and applies the answer to s. It reports whether Envoy should
// go on with the request (true when allowed, false when s was answered), and
// whether the answer may be replayed to an identical request (check.Replay;
// never for a 500 or a denial).
func (f *Filter) Serve(r *check.Request, s Stream) (bool, check.Replay) {
	r.Host = r.Headers.Get(":authority")
	r.Path = r.Headers.Get(":path")
	r.Method = r.Headers.Get(":method")
	r.Scheme = r.Headers.Get(":scheme")
	a := f.Answer(r)
	if err := validMutation(a); err != nil {
		// What ext_authz's validate_mutations does in the bundled config: a
		// header Envoy must not write (it would split the request upstream)
		// makes the answer a 500, never an allow.
		f.log.Error("the answer has a header Envoy must not write; answered 500", zap.Error(err),
			zap.String("request_id", r.Headers.Get("x-request-id")))
		s.SendResponse(500, []check.Header{{Name: "content-type", Value: "text/plain; charset=utf-8"},
			{Name: "cache-control", Value: "no-store"}}, "internal error\n", DetailsInvalidMutation)
		return false, check.Replay{}
	}
	if !a.Allowed {
		details := DetailsDenied
		if a.Status == http.StatusServiceUnavailable {
			// Not deciding yet (the store was never read): an outage, as
			// Check says with gRPC UNAVAILABLE.
			details = DetailsUnavailable
		}
		s.SendResponse(a.Status, a.Headers, a.Body, details)
		return false, check.Replay{}
	}
	for _, h := range a.Headers {
		s.SetHeader(h.Name, h.Value)
	}
	for _, name := range a.Remove {
		s.RemoveHeader(name)
	}
	if ce := f.log.Check(zap.DebugLevel, "decided in Go"); ce != nil {
		// The answer cache's tests count these: a replayed answer writes none.
		ce.Write(zap.Bool("replayable", a.Replay.OK), zap.String("request_id", r.Headers.Get("x-request-id")))
	}
	return true, a.Replay
}

// Unavailable answers 503, as ext_authz does when its authorizer cannot
// answer (the bundled Envoy's status_on_error): the module fails closed when
// its config is gone or a decision panicked. A store never read is the
// server's own 503 (check.Server.NotReady), which Serve passes on.
func Unavailable(s Stream) {
	s.SendResponse(503, []check.Header{{Name: "content-type", Value: "text/plain; charset=utf-8"},
		{Name: "cache-control", Value: "no-store"}},
		"the authorizer is unavailable\n", DetailsUnavailable)
}

// Recovered logs a panic the binding recovered (it then answers 503): a
// panic must never cross into Envoy, which would abort the process.
func Recovered(log *zap.Logger, v any) {
	if log == nil {
		log = zap.L()
	}
	log.Error("extauthz module recovered from a panic; the request was answered 503", zap.Any("panic", v), zap.Stack("stack"))
}
