package check_test

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/impersonation"
	"github.com/extauthz/extauthz/internal/policy"
	"github.com/extauthz/extauthz/internal/testkit"
)

func benchSnapshot(b *testing.B) *check.Snapshot {
	b.Helper()
	return benchSnapshotCaching(b, 0)
}

// benchSnapshotCaching is benchSnapshot with the verifier and assertion
// caches bounded to about size entries (0: the defaults).
func benchSnapshotCaching(b *testing.B, size int) *check.Snapshot {
	b.Helper()
	pol, err := policy.Compile([]policy.RouteSpec{
		{Name: "app", From: "https://app.example.com", AllowedGroups: []string{"engineering"}},
		{Name: "admin", From: "https://admin.example.com", AllowedUsers: []string{"alice@corp.example"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	v, err := identity.NewVerifier(identity.VerifierOptions{Secrets: []string{secret}, Leeway: time.Minute, CacheSize: size})
	if err != nil {
		b.Fatal(err)
	}
	key, err := identity.GenerateSigningKey()
	if err != nil {
		b.Fatal(err)
	}
	return &check.Snapshot{
		Engine: &decision.Engine{Policy: pol, Verifier: v, CookieName: "_pomerium",
			Rules: impersonation.NewRules([]string{"alice@corp.example"}, nil, "", time.Minute)},
		Key:          key,
		ClaimHeaders: []check.ClaimHeader{{Claim: "email", Header: "x-pomerium-claim-email"}},
		Assertions:   check.NewAssertionCache(cmp.Or(size, 10000)),
	}
}

func benchToken(b *testing.B, c identity.Claims) string {
	b.Helper()
	c.Audience = jwt.ClaimStrings{"app.example.com", "admin.example.com"}
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
	c.IssuedAt = jwt.NewNumericDate(time.Now())
	tok, err := identity.Mint(&c, secret)
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// BenchmarkDecideWithAssertion is the in-process decision plus the upstream
// assertion on the cached path: what every allowed request of a session costs
// after its first.
func BenchmarkDecideWithAssertion(b *testing.B) {
	snap := benchSnapshot(b)
	bob := benchToken(b, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}})
	aliceAsBob := benchToken(b, identity.Claims{Email: "alice@corp.example", ImpersonateEmail: "bob@corp.example", ImpersonateGroups: []string{"engineering"}})
	for _, bc := range []struct{ name, token string }{{"allowed", bob}, {"impersonated", aliceAsBob}} {
		b.Run(bc.name, func(b *testing.B) {
			headers := map[string]string{"authorization": "Pomerium " + bc.token}
			req := decision.Request{Host: "app.example.com", Path: "/", Method: "GET",
				Header: func(n string) string { return headers[n] }}
			b.ReportAllocs()
			for b.Loop() {
				now := time.Now()
				d := snap.Engine.Decide(req, now)
				if !d.Allowed() {
					b.Fatal(d.Reason)
				}
				if _, err := snap.AssertionFor(&d, "app.example.com", now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheck is the full Check handler in process: request mapping,
// decision, assertion and the CheckResponse, without the gRPC transport.
func BenchmarkCheck(b *testing.B) {
	snap := benchSnapshot(b)
	srv := check.New(snap, zap.NewNop())
	bob := benchToken(b, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}})
	carol := benchToken(b, identity.Claims{Email: "carol@corp.example"})
	cases := []struct {
		name    string
		headers map[string]string
	}{
		{"allowed", map[string]string{"authorization": "Pomerium " + bob, "cookie": "a=b"}},
		{"denied", map[string]string{"authorization": "Pomerium " + carol}},
		{"no token", map[string]string{"accept": "*/*"}},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			req := envoyRequest("GET", "https://app.example.com/reports?q=1", bc.headers, "app")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := srv.Check(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// Every request a new session (the 100k-session workload): the token is
	// verified and the assertion signed each time, and neither cache helps.
	b.Run("allowed, every session new", func(b *testing.B) {
		reqs := make([]*authv3.CheckRequest, 2048)
		for i := range reqs {
			tok := benchToken(b, identity.Claims{Email: fmt.Sprintf("user%d@corp.example", i), Groups: []string{"engineering"}})
			reqs[i] = envoyRequest("GET", "https://app.example.com/reports?q=1", map[string]string{"authorization": "Pomerium " + tok}, "app")
		}
		// Caches of 64 entries at most (one per shard): every request misses.
		srv := check.New(benchSnapshotCaching(b, 1), zap.NewNop())
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if resp, _ := srv.Check(context.Background(), reqs[i%len(reqs)]); resp.GetOkResponse() == nil {
				b.Fatalf("not allowed: %v", resp)
			}
			i++
		}
	})
	// The same allowed request as Envoy sends it with encode_raw_headers:
	// the cost of reading header_map at the edge.
	b.Run("allowed via header_map", func(b *testing.B) {
		req := rawRequest("GET", "https://app.example.com/reports?q=1",
			[][2]string{{"authorization", "Pomerium " + bob}, {"cookie", "a=b"}}, "app")
		if resp, _ := srv.Check(context.Background(), req); resp.GetOkResponse() == nil {
			b.Fatalf("not allowed: %v", resp)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := srv.Check(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSignAssertion is the uncached ES256 signature: the cost of a
// session's first request on a route.
func BenchmarkSignAssertion(b *testing.B) {
	key, err := identity.GenerateSigningKey()
	if err != nil {
		b.Fatal(err)
	}
	a := identity.Assertion{Issuer: "app.example.com", Audience: "app.example.com",
		Identity: identity.Identity{Email: "bob@corp.example", Groups: []string{"engineering"}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := key.Sign(a, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckOverGRPC is the Check served by grpc-go with
// check.ServerOptions, 64 calls in flight as Envoy keeps them under load. Its
// goroutines/op is how often a Check ran on a fresh goroutine (growing its
// stack) instead of a stream worker's: the pool's size is for this. Its
// cpu-ns/op is the process's CPU time (client and server) per call, which
// other processes on a shared machine disturb less than the wall time.
func BenchmarkCheckOverGRPC(b *testing.B) {
	snap := benchSnapshot(b)
	bob := benchToken(b, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}})
	benchCheckOverGRPC(b, snap, envoyRequest("GET", "https://app.example.com/reports?q=1", map[string]string{"authorization": "Pomerium " + bob}, "app"))
}

// BenchmarkCheckOverGRPCEnvoyShaped is BenchmarkCheckOverGRPC with the
// request Envoy sends: peers, time, TLS, metadata and 15 headers.
func BenchmarkCheckOverGRPCEnvoyShaped(b *testing.B) {
	snap := benchSnapshot(b)
	bob := benchToken(b, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}})
	benchCheckOverGRPC(b, snap, check.EnvoyLikeRequest(b, bob))
}

// benchCheckOverGRPC serves Check and calls it with req, marshalled once:
// the client sends the bytes and keeps the answer's bytes (rawCodec), so
// that what is measured is the server and the transport, not the client's
// protobuf work (the process's CPU is both ends').
func benchCheckOverGRPC(b *testing.B, snap *check.Snapshot, req *authv3.CheckRequest) {
	conn := testkit.ServeCheck(b, check.New(snap, zap.NewNop()), 0, check.ServerOptions()...)
	if resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), req); err != nil || resp.GetOkResponse() == nil {
		b.Fatalf("Check: %v %v", resp, err)
	}
	msg, err := proto.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	created := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(created)
	before := created[0].Value.Uint64()
	cpuBefore := processCPU(b)
	b.SetParallelism(64 / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var resp []byte
			if err := conn.Invoke(context.Background(), authv3.Authorization_Check_FullMethodName, msg, &resp, grpc.ForceCodecV2(rawCodec{})); err != nil || len(resp) == 0 {
				b.Errorf("Check: %d bytes, %v", len(resp), err)
				return
			}
		}
	})
	metrics.Read(created)
	b.ReportMetric(float64(created[0].Value.Uint64()-before)/float64(b.N), "goroutines/op")
	b.ReportMetric(float64(processCPU(b)-cpuBefore)/float64(b.N), "cpu-ns/op")
}

// rawCodec is a client codec of bytes as they are: it sends a []byte, and
// reads the answer into a *[]byte or a proto.Message.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec sends []byte, not %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if b, ok := v.(*[]byte); ok {
		*b = data.Materialize()
		return nil
	}
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

// processCPU is the CPU time, user and system, this process has used.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
