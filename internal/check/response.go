package check

import (
	"net/http"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/extauthz/extauthz/internal/decision"
)

// A Check is answered in one allocation: the Answer, the CheckResponse with
// every message it points to and, up to inlineHeaders, its headers' options,
// values and the list of them (issue 19: it took one allocation per message
// and two per header, 17 for a typical allow). grpc-go only reads a
// response, once, to marshal it, so the messages may share memory, and may
// point into the Answer's strings and removals.

// checkAnswer is one Check's Answer and the CheckResponse made of it. It
// holds the messages of an allow and of a denial both, since which one is
// known only once the Answer is built: about 200 bytes more than either, in
// the same allocation.
type checkAnswer struct {
	a      Answer
	resp   authv3.CheckResponse
	status rpcstatus.Status
	// An allow.
	okWrap authv3.CheckResponse_OkResponse
	ok     authv3.OkHttpResponse
	// A denial.
	deniedWrap authv3.CheckResponse_DeniedResponse
	denied     authv3.DeniedHttpResponse
	http       typev3.HttpStatus

	slotBuf [inlineHeaders]headerSlot
	listBuf [inlineHeaders]*corev3.HeaderValueOption
}

// headerSlot is one header: the option and the value it points to.
type headerSlot struct {
	opt corev3.HeaderValueOption
	val corev3.HeaderValue
}

// response maps c.a to ext_authz's CheckResponse, inside c. Every header it
// sets overwrites: Envoy 1.40 reads append_action, and its zero value would
// keep a client-sent copy beside ours.
func (c *checkAnswer) response() *authv3.CheckResponse {
	a := &c.a
	c.resp.Status = &c.status
	headers := c.headers()
	if a.Allowed {
		c.status.Code = int32(codes.OK)
		c.ok.Headers, c.ok.HeadersToRemove = headers, a.Remove
		c.okWrap.OkResponse = &c.ok
		c.resp.HttpResponse = &c.okWrap
		return &c.resp
	}
	c.status.Code, c.status.Message = int32(a.deniedCode()), a.Reason
	c.http.Code = typev3.StatusCode(a.Status)
	c.denied.Status, c.denied.Headers, c.denied.Body = &c.http, headers, a.Body
	c.deniedWrap.DeniedResponse = &c.denied
	c.resp.HttpResponse = &c.deniedWrap
	return &c.resp
}

// headers are c.a's headers as options: in c when they fit, else in two
// allocations for all of them.
func (c *checkAnswer) headers() []*corev3.HeaderValueOption {
	n := len(c.a.Headers)
	slots, list := c.slotBuf[:], c.listBuf[:]
	if n > inlineHeaders {
		slots, list = make([]headerSlot, n), make([]*corev3.HeaderValueOption, n)
	}
	slots, list = slots[:n], list[:n]
	for i, h := range c.a.Headers {
		s := &slots[i]
		s.val.Key, s.val.Value = h.Name, h.Value
		s.opt.Header = &s.val
		s.opt.AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		list[i] = &s.opt
	}
	return list
}

// deniedCode is the gRPC status of a denial: Envoy reads only OK or not, but
// operators read the code in its logs and stats.
func (a *Answer) deniedCode() codes.Code {
	switch a.Status {
	case int(decision.StatusSignIn), int(decision.StatusUnauthorized):
		return codes.Unauthenticated
	case http.StatusServiceUnavailable: // not deciding (yet): an outage, not a verdict
		return codes.Unavailable
	}
	return codes.PermissionDenied
}
