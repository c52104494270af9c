package module

import (
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
	DetailsDenied      = "extauthz_denied"
	DetailsUnavailable = "extauthz_unavailable"
)

// Serve decides the request whose header lines r holds (AddHeader; the
// pseudo-headers give host, path, method and scheme, as Envoy's ext_authz
// reads them) and applies the answer to s. It reports whether Envoy should
// go on with the request: true when allowed, false when s was answered.
func (f *Filter) Serve(r *check.Request, s Stream) bool {
	if !f.Ready() {
		Unavailable(s)
		return false
	}
	r.Host = r.Headers[":authority"]
	r.Path = r.Headers[":path"]
	r.Method = r.Headers[":method"]
	r.Scheme = r.Headers[":scheme"]
	a := f.Answer(r)
	if !a.Allowed {
		s.SendResponse(a.Status, a.Headers, a.Body, DetailsDenied)
		return false
	}
	for _, h := range a.Headers {
		s.SetHeader(h.Name, h.Value)
	}
	for _, name := range a.Remove {
		s.RemoveHeader(name)
	}
	return true
}

// Unavailable answers 503, as ext_authz does when its authorizer cannot
// answer (the bundled Envoy's status_on_error): the module fails closed when
// its store was never read, its config is gone or it failed.
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
