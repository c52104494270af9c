package check_test

import (
	"context"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/store"
	"github.com/extauthz/extauthz/internal/store/redistest"
)

// A replica whose store cannot be read at start answers every Check at once,
// failing closed (503, UNAVAILABLE, a body saying why), with gRPC health
// NOT_SERVING; it decides Checks and says SERVING once the store has been
// read in full. Before, its listener accepted connections and never
// answered, so every request waited out Envoy's Check timeout.
func TestAReplicaWaitingForItsStoreAnswersUnavailable(t *testing.T) {
	redis := redistest.Start(t)
	redis.Kill() // the store is unreachable when the replica starts
	st, err := store.Open("redis", redis.URL(), store.Options{Logger: zap.NewNop(), PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })

	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.srv.HoldUntil(ctx, "the first full read of the store", st.WaitReady)

	bob := mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}})
	allowed := envoyRequest("GET", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + bob, "accept": "application/json"}, "app")
	health := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := f.health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("health %q: %v", service, err)
		}
		return resp.GetStatus()
	}
	services := []string{"", authv3.Authorization_ServiceDesc.ServiceName}

	t.Run("while the store is unreachable health is NOT_SERVING", func(t *testing.T) {
		for _, svc := range services {
			if got := health(svc); got != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Errorf("health %q = %v, want NOT_SERVING", svc, got)
			}
		}
	})
	t.Run("while the store is unreachable a valid token is refused with 503 UNAVAILABLE, not left waiting", func(t *testing.T) {
		// f.check gives up after 5 s: an unanswered Check fails the test.
		resp := f.check(t, allowed)
		if got := codes.Code(resp.GetStatus().GetCode()); got != codes.Unavailable {
			t.Errorf("gRPC status %v, want Unavailable", got)
		}
		d := resp.GetDeniedResponse()
		if d == nil || d.GetStatus().GetCode() != 503 {
			t.Fatalf("want a 503 denial, got %v", resp)
		}
		if !strings.Contains(d.GetBody(), check.ReasonStarting) || !strings.Contains(d.GetBody(), "req-123") {
			t.Errorf("body %q does not say why, with the request id", d.GetBody())
		}
		got := map[string]string{}
		for _, h := range d.GetHeaders() {
			got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		if got["retry-after"] != "1" || got["content-type"] != "application/json" {
			t.Errorf("headers %v, want retry-after 1 and the client's content type", got)
		}
		if f.srv.IsReady() {
			t.Error("IsReady before the store was read")
		}
	})

	redis.Restart()
	t.Run("once the store has been read in full it is SERVING and decides", func(t *testing.T) {
		deadline := time.Now().Add(15 * time.Second)
		for health("") != healthpb.HealthCheckResponse_SERVING {
			if time.Now().After(deadline) {
				t.Fatal("health never became SERVING after redis-server came back")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !st.Ready() {
			t.Error("SERVING before the store says it was read")
		}
		if got := health(services[1]); got != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q = %v, want SERVING", services[1], got)
		}
		if resp := f.check(t, allowed); resp.GetOkResponse() == nil {
			t.Errorf("want an allow, got %v", resp)
		}
	})
}

// Shutdown wins over a late Ready: a replica draining before its store was
// read never reports SERVING again.
func TestReadyAfterShutdownStaysNotServing(t *testing.T) {
	f := newFixture(t)
	f.srv.NotReady("test")
	f.srv.Shutdown()
	f.srv.Ready()
	resp, err := f.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health = %v, %v; want NOT_SERVING", resp, err)
	}
}
