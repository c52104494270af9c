package check_test

import (
	"context"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/testkit"
)

// TestCheckOverGRPCAnswersAsServerCheck: a real gRPC client calling Check
// through the real server gets the answer Server.Check gives in process, on
// a server with ServerOptions (the request decoded lean, the response
// marshalled by vtproto) and on one with grpc-go's default codec; bytes that
// are no CheckRequest get an error status, never an answer.
func TestCheckOverGRPCAnswersAsServerCheck(t *testing.T) {
	bob := mint(t, identity.Claims{Email: "bob@corp.example", User: "bob", Groups: []string{"engineering"}})
	carol := mint(t, identity.Claims{Email: "carol@corp.example", ImpersonateEmail: "bob@corp.example"})
	aliceAsBob := mint(t, identity.Claims{Email: "alice@corp.example", Groups: []string{"admins"},
		ImpersonateEmail: "bob@corp.example", ImpersonateGroups: []string{"engineering"}})
	const browser = "text/html,application/xhtml+xml"
	noHost := envoyRequest("GET", "https://app.example.com/", nil, "")
	noHost.Attributes.Request.Http.Host = ""
	requests := []struct {
		name     string
		req      *authv3.CheckRequest
		notReady bool
		allowed  bool
	}{
		{"an allow with the assertion, claim headers and removals", envoyRequest("GET", "https://app.example.com/r?q=1",
			map[string]string{"authorization": "Pomerium " + bob, "x-pomerium-claim-email": "forged", "x-internal": "1",
				"cookie": "theme=dark; _pomerium=" + bob}, "app"), false, true},
		{"an allow read from header_map", rawRequest("GET", "https://app.example.com/", [][2]string{
			{"Authorization", "Pomerium " + bob}, {"cookie", "a=1"}, {"Cookie", "b=2"}}, "app"), false, true},
		{"an impersonated allow", envoyRequest("GET", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + aliceAsBob}, ""), false, true},
		{"a browser sent to sign in", envoyRequest("GET", "https://app.example.com/a?b=c", map[string]string{"accept": browser}, ""), false, false},
		{"no token", envoyRequest("GET", "https://app.example.com/", nil, ""), false, false},
		{"a malformed token", envoyRequest("GET", "https://app.example.com/", map[string]string{"authorization": "Pomerium garbage"}, ""), false, false},
		{"a policy denial", envoyRequest("GET", "https://admin.example.com/", map[string]string{"authorization": "Pomerium " + bob, "accept": "application/json"}, ""), false, false},
		{"an impersonation refused", envoyRequest("GET", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + carol, "accept": browser}, ""), false, false},
		{"an unknown host", envoyRequest("GET", "https://nowhere.example.com/", map[string]string{"authorization": "Pomerium " + bob}, ""), false, false},
		{"an unknown route name", envoyRequest("GET", "https://app.example.com/", nil, "ghost"), false, false},
		{"no host", noHost, false, false},
		{"a server not ready", envoyRequest("GET", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + bob}, "app"), true, false},
	}
	f := newFixture(t)
	for _, server := range []struct {
		name string
		opts []grpc.ServerOption
	}{{"with ServerOptions", check.ServerOptions()}, {"with grpc-go's default codec", nil}} {
		client := authv3.NewAuthorizationClient(testkit.ServeCheck(t, f.srv, 0, server.opts...))
		for _, tc := range requests {
			t.Run(server.name+", "+tc.name+" is answered as in process", func(t *testing.T) {
				if tc.notReady {
					f.srv.NotReady("testing")
					defer f.srv.Ready()
				}
				// Twice first: an assertion is cached from its second
				// signing on, and ES256 signatures differ every time.
				for range 2 {
					if _, err := f.srv.Check(context.Background(), tc.req); err != nil {
						t.Fatal(err)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				got, err := client.Check(ctx, tc.req)
				if err != nil {
					t.Fatalf("Check over gRPC: %v", err)
				}
				want, _ := f.srv.Check(context.Background(), tc.req)
				if !proto.Equal(got, want) {
					t.Errorf("over gRPC:\n%v\nin process:\n%v", got, want)
				}
				if (got.GetOkResponse() != nil) != tc.allowed || (got.GetStatus().GetCode() == int32(codes.OK)) != tc.allowed {
					t.Errorf("allowed = %v, want %v: %v", got.GetOkResponse() != nil, tc.allowed, got)
				}
			})
		}
		conn := testkit.ServeCheck(t, f.srv, 0, server.opts...)
		nest := func(num protowire.Number, v []byte) []byte {
			return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
		}
		whole, err := proto.Marshal(requests[0].req)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []struct {
			name string
			msg  []byte
		}{
			{"a truncated request", whole[:len(whole)-4]},
			{"a host that is not UTF-8", nest(1, nest(4, nest(2, nest(5, []byte("app\xff.example.com")))))},
			{"a reserved wire type", []byte{0x0f}},
		} {
			t.Run(server.name+", "+bad.name+" is an error status, never an answer", func(t *testing.T) {
				var resp authv3.CheckResponse
				err := conn.Invoke(context.Background(), authv3.Authorization_Check_FullMethodName, bad.msg, &resp, grpc.ForceCodecV2(rawCodec{}))
				if status.Code(err) == codes.OK {
					t.Fatalf("answered %v, want an error status", &resp)
				}
			})
		}
	}
}

// TestCheckRunsTheServersInterceptor: Check's own service desc hands the
// call to a server's unary interceptor, and answers what it returns.
func TestCheckRunsTheServersInterceptor(t *testing.T) {
	f := newFixture(t)
	bob := mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}})
	var mu sync.Mutex
	var seen []string
	intercept := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		mu.Lock()
		seen = append(seen, info.FullMethod)
		mu.Unlock()
		if _, isProto := req.(proto.Message); !isProto {
			return nil, status.Errorf(codes.Internal, "request %T is no proto.Message", req)
		}
		return handler(ctx, req)
	}
	conn := testkit.ServeCheck(t, f.srv, 0, append(check.ServerOptions(), grpc.UnaryInterceptor(intercept))...)
	resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(),
		envoyRequest("GET", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + bob}, "app"))
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("Check through the interceptor = %v, %v; want an allow", resp, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != authv3.Authorization_Check_FullMethodName {
		t.Errorf("interceptor saw %v, want one %s", seen, authv3.Authorization_Check_FullMethodName)
	}
}
