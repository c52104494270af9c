package check

import (
	"context"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// Check's own gRPC path (issue 19): the request read by the lean decoder
// (wire.go) instead of proto.Unmarshal, which built a message per level and
// a string per header key and value for the few fields Check reads, and the
// answer written from the Answer (encode.go) instead of a CheckResponse
// marshalled by reflection. The codec, which ServerOptions installs, does
// both; every other message (the health service's) takes grpc-go's proto
// codec as before.

// checkCall is one Check served by authorizationDesc: the request, as
// whichever codec the server runs decodes it, and its answer, in one
// allocation. It embeds a CheckRequest so that it is itself a proto.Message
// (the CheckRequest's): grpc-go's proto codec, on a server without
// ServerOptions, fills that, and the lean codec fills req instead.
type checkCall struct {
	authv3.CheckRequest
	req    Request
	lean   bool   // req was decoded from the wire; else read it from CheckRequest
	answer Answer // what the lean codec writes (encode.go)
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
// lean codec decoded the request, and the answer it gets back is then an
// *Answer, which only that codec can write. A request that does not decode is an
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

// checkCall answers call, as Check answers its CheckRequest. A request the
// lean codec decoded is answered with the checkAnswer itself, which that
// codec writes to the wire (encode.go); any other with the CheckResponse.
func (s *Server) checkCall(call *checkCall) any {
	if !call.lean {
		call.req = checkRequest(&call.CheckRequest)
		c := new(checkAnswer)
		s.answer(&call.req, &c.a)
		return c.response()
	}
	s.answer(&call.req, &call.answer)
	return &call.answer
}

// codec is the server's gRPC codec: lean for Check, grpc-go's otherwise.
type codec struct{}

var protoCodec = encoding.GetCodecV2(grpcproto.Name)

func (codec) Name() string { return grpcproto.Name }

// Marshal writes Check's answer from the Answer (encode.go), and anything
// else with grpc-go's proto codec. (go-control-plane's generated vtproto
// marshalling exists only under the build tag vtprotobuf and still writes
// google.rpc.Status by reflection.)
func (codec) Marshal(v any) (mem.BufferSlice, error) {
	if a, ok := v.(*Answer); ok {
		return a.marshal()
	}
	return protoCodec.Marshal(v)
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
