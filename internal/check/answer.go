package check

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

// An answer is built in three allocations: the CheckResponse with every
// message it points to, and its headers' options and values in one slab
// plus the list of them (issue 19: it took one allocation per message and
// two per header, 17 for a typical allow). grpc-go only reads an answer,
// once, to marshal it, so the messages may share memory.

// okAnswer is an allowed Check's answer.
type okAnswer struct {
	resp    authv3.CheckResponse
	status  rpcstatus.Status
	wrap    authv3.CheckResponse_OkResponse
	ok      authv3.OkHttpResponse
	headers headerSet
}

func newOKAnswer(headers int) *okAnswer {
	b := &okAnswer{headers: newHeaderSet(headers)}
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
	b := &denyAnswer{headers: newHeaderSet(headers)}
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
}

// headerSlot is one header: the option and the value it points to.
type headerSlot struct {
	opt corev3.HeaderValueOption
	val corev3.HeaderValue
}

// newHeaderSet has room for n headers without allocating again.
func newHeaderSet(n int) headerSet {
	return headerSet{slots: make([]headerSlot, 0, n), list: make([]*corev3.HeaderValueOption, 0, n)}
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
