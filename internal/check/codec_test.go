package check

import (
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// TestCodecMarshalsWhatProtoUnmarshalReads: the codec's bytes for Check's
// answers (built in place by checkAnswer) and for the health service's read
// back as the same message, small ones and one above grpc-go's pooling
// threshold.
func TestCodecMarshalsWhatProtoUnmarshalReads(t *testing.T) {
	answer := func(a Answer) *authv3.CheckResponse {
		c := &checkAnswer{a: a}
		return c.response()
	}
	tests := []struct {
		name string
		msg  proto.Message
		into proto.Message
	}{
		{"an allow with headers and removals", answer(Answer{Allowed: true,
			Headers: []Header{{"x-pomerium-jwt-assertion", "eyJ.a.b"}, {"x-pomerium-claim-email", "bob@corp.example"}},
			Remove:  []string{"authorization", "x-pomerium-claim-groups"}}), &authv3.CheckResponse{}},
		{"an allow of more headers than fit inline, past the pooling threshold", answer(Answer{Allowed: true,
			Headers: []Header{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}, {"x-big", strings.Repeat("v", 4096)}}}), &authv3.CheckResponse{}},
		{"a denial with a body", answer(Answer{Status: 403, Body: "denied\nrequest id: r", Reason: "policy",
			Headers: []Header{{"content-type", "text/plain"}}}), &authv3.CheckResponse{}},
		{"a not-ready answer", answer(Answer{Status: 503, Body: "not ready", Reason: "starting"}), &authv3.CheckResponse{}},
		{"a health answer", &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, &healthpb.HealthCheckResponse{}},
	}
	for _, tc := range tests {
		t.Run(tc.name+" reads back equal", func(t *testing.T) {
			data, err := codec{}.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			defer data.Free()
			if err := proto.Unmarshal(data.Materialize(), tc.into); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(tc.into, tc.msg) {
				t.Errorf("read back\n%v\nwant\n%v", tc.into, tc.msg)
			}
		})
	}
}

// TestCodecUnmarshalsOtherMessagesAsProto: a message that is not Check's
// request goes to grpc-go's proto codec, errors included.
func TestCodecUnmarshalsOtherMessagesAsProto(t *testing.T) {
	b, err := proto.Marshal(&healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"})
	if err != nil {
		t.Fatal(err)
	}
	var got healthpb.HealthCheckRequest
	if err := (codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &got); err != nil || got.GetService() != "envoy.service.auth.v3.Authorization" {
		t.Errorf("Unmarshal = %v, %v", &got, err)
	}
	if err := (codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x0a, 0x05})}, &got); err == nil {
		t.Error("truncated health request accepted")
	}
}

// TestCodecKeepsNoReferenceToTheReceiveBuffer: grpc-go reuses its receive
// buffer once Unmarshal returns, and the decoded request's strings point
// into bytes; they must be the codec's own copy, or a later message would
// rewrite this one's headers under its Check.
func TestCodecKeepsNoReferenceToTheReceiveBuffer(t *testing.T) {
	received := marshal(t, envoyLikeRequest(t, fakeToken))
	call := new(checkCall)
	if err := (codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(received)}, call); err != nil {
		t.Fatal(err)
	}
	before := call.req.Headers.Get("authorization")
	if before == "" {
		t.Fatal("the request read has no authorization header")
	}
	want := strings.Clone(before)
	for i := range received {
		received[i] = 'X' // grpc-go's next message in the same buffer
	}
	if got := call.req.Headers.Get("authorization"); got != want {
		t.Errorf("authorization changed with the receive buffer: %q", got)
	}
}
