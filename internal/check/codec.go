package check

import (
	"context"
	"fmt"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// Check's own gRPC path (issue 19): the request read by the lean decoder
// (wire.go) instead of proto.Unmarshal, and the response written by
// go-control-plane's generated vtproto code instead of reflection. Both are
// in the codec, which ServerOptions installs; every other message (the
// health service's) takes grpc-go's proto codec as before.
//
// go-control-plane compiles its vtproto code only under the build tag
// vtprotobuf (`go build -tags vtprotobuf`): without it, CheckResponse has no
// SizeVT and the codec marshals it with proto.Marshal, as grpc-go would; the
// lean decoding needs no tag.

// checkCall is one Check served by authorizationDesc: the request, as
// whichever codec the server runs decodes it, and its answer, in one
// allocation. It embeds a CheckRequest so that it is itself a proto.Message
// (the CheckRequest's): grpc-go's proto codec, on a server without
// ServerOptions, fills that, and the lean codec fills req instead.
type checkCall struct {
	authv3.CheckRequest
	req    Request
	lean   bool // req was decoded from the wire; else read it from CheckRequest
	answer checkAnswer
}

// authorizationDesc is envoy.service.auth.v3.Authorization, as
// authv3.Authorization_ServiceDesc but with Check decoding into a checkCall.
var authorizationDesc = grpc.ServiceDesc{
	ServiceName: authv3.Authorization_ServiceDesc.ServiceName,
	HandlerType: (*authv3.AuthorizationServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: checkHandler}},
	Streams:     []grpc.StreamDesc{},
	Metadata:    authv3.Authorization_ServiceDesc.Metadata,
}

// checkHandler is the generated handler's shape: decode, then the
// interceptor if any, then the Check. An interceptor is handed the
// *checkCall: a proto.Message, but the CheckRequest in it is empty when the
// lean codec decoded the request. A request that does not decode is an
// error status (INTERNAL, from grpc-go) and never an answer: Envoy denies
// it, as every bundled config sets failure_mode_allow: false.
func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	call := new(checkCall)
	if err := dec(call); err != nil {
		return nil, err
	}
	s := srv.(*Server)
	if interceptor == nil {
		return s.checkCall(call), nil
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, call, info, func(_ context.Context, req any) (any, error) {
		return s.checkCall(req.(*checkCall)), nil
	})
}

// checkCall answers call, as Check answers its CheckRequest.
func (s *Server) checkCall(call *checkCall) *authv3.CheckResponse {
	if !call.lean {
		call.req = checkRequest(&call.CheckRequest)
	}
	s.answer(&call.req, &call.answer.a)
	return call.answer.response()
}

// codec is the server's gRPC codec: lean for Check, grpc-go's otherwise.
type codec struct{}

var protoCodec = encoding.GetCodecV2(grpcproto.Name)

func (codec) Name() string { return grpcproto.Name }

// vtMarshaler is a message with go-control-plane's generated vtproto
// marshalling (CheckResponse and the messages in it).
type vtMarshaler interface {
	SizeVT() int
	MarshalToSizedBufferVTStrict([]byte) (int, error)
}

// Marshal writes a message with vtproto code when it has it, into a pooled
// buffer above grpc-go's pooling threshold (as its proto codec does; grpc-go
// frees the buffer once written), and with proto.Marshal otherwise.
func (codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(vtMarshaler)
	if !ok {
		return protoCodec.Marshal(v)
	}
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if err := marshalVT(m, buf); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	if err := marshalVT(m, *buf); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// marshalVT fills buf, of exactly m's size: vtproto writes from the end.
func marshalVT(m vtMarshaler, buf []byte) error {
	n, err := m.MarshalToSizedBufferVTStrict(buf)
	if err != nil {
		return fmt.Errorf("marshal %T: %w", m, err)
	}
	if n != len(buf) {
		return fmt.Errorf("marshal %T: wrote %d bytes of %d", m, n, len(buf))
	}
	return nil
}

// Unmarshal decodes a Check's request with the lean decoder, into one copy
// of the bytes that its strings point into (grpc-go frees data once this
// returns), and anything else with grpc-go's proto codec.
func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	call, ok := v.(*checkCall)
	if !ok {
		return protoCodec.Unmarshal(data, v)
	}
	r, err := decodeCheckRequest(data.Materialize())
	if err != nil {
		return err
	}
	call.req, call.lean = r, true
	return nil
}
