package check

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

// An answer is built in one allocation: the CheckResponse with every
// message it points to and, up to inlineHeaders, its headers' options,
// values and the lists of them (issue 19: it took one allocation per message
// and two per header, 17 for a typical allow). grpc-go only reads an answer,
// once, to marshal it, so the messages may share memory.

// inlineHeaders is how many headers an answer holds without allocating
// again: the assertion and two claim headers (the bundled config's email and
// groups) of an allow, or a denial's three or four. A slot is about 180
// bytes, so more would allocate bytes most answers never use.
const inlineHeaders = 4

// okAnswer is an allowed Check's answer.
type okAnswer struct {
	resp    authv3.CheckResponse
	status  rpcstatus.Status
	wrap    authv3.CheckResponse_OkResponse
	ok      authv3.OkHttpResponse
	headers headerSet
	remove  [2]string // HeadersToRemove's first
}

func newOKAnswer(headers int) *okAnswer {
	b := &okAnswer{}
	b.headers.init(headers)
	b.ok.HeadersToRemove = b.remove[:0]
	b.status.Code = int32(codes.OK)
	b.wrap.OkResponse = &b.ok
	b.resp.Status, b.resp.HttpResponse = &b.status, &b.wrap
	return b
}

// denyAnswer is a denied Check's answer.
type denyAnswer struct {
	resp    authv3.CheckResponse
	status  rpcstatus.Status
	wrap    authv3.CheckResponse_DeniedResponse
	denied  authv3.DeniedHttpResponse
	http    typev3.HttpStatus
	headers headerSet
}

func newDenyAnswer(headers int) *denyAnswer {
	b := &denyAnswer{}
	b.headers.init(headers)
	b.denied.Status = &b.http
	b.wrap.DeniedResponse = &b.denied
	b.resp.Status, b.resp.HttpResponse = &b.status, &b.wrap
	return b
}

// headerSet is the headers an answer sets, each overwriting any copy the
// client sent. list is what goes into the answer.
type headerSet struct {
	slots []headerSlot
	list  []*corev3.HeaderValueOption
	// The first inlineHeaders, in the answer's own allocation.
	slotBuf [inlineHeaders]headerSlot
	listBuf [inlineHeaders]*corev3.HeaderValueOption
}

// headerSlot is one header: the option and the value it points to.
type headerSlot struct {
	opt corev3.HeaderValueOption
	val corev3.HeaderValue
}

// init makes room for n headers: in the set itself when they fit. The set
// must not move afterwards (it lives inside an answer on the heap).
func (h *headerSet) init(n int) {
	if n <= inlineHeaders {
		h.slots, h.list = h.slotBuf[:0], h.listBuf[:0]
		return
	}
	h.slots, h.list = make([]headerSlot, 0, n), make([]*corev3.HeaderValueOption, 0, n)
}

func (h *headerSet) set(name, value string) {
	if len(h.slots) == cap(h.slots) {
		// More headers than counted: a new slab, so that the slots already
		// handed out stay where they are.
		h.slots = make([]headerSlot, 0, 4)
	}
	h.slots = h.slots[:len(h.slots)+1]
	s := &h.slots[len(h.slots)-1]
	s.val.Key, s.val.Value = name, value
	s.opt.Header = &s.val
	// Envoy 1.40 reads append_action; its zero value would keep a
	// client-sent copy beside ours.
	s.opt.AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	h.list = append(h.list, &s.opt)
}

// isSet reports whether name (as spelled) is among the headers set.
func (h *headerSet) isSet(name string) bool {
	for _, o := range h.list {
		if o.Header.Key == name {
			return true
		}
	}
	return false
}
