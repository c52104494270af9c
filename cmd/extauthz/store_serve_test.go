//go:build unix

package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/store/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
)

// TestServeWithTheStore: serve is ready (health SERVING, /healthz 200) only
// after its first full read of the store, and until then answers every
// Check at once with a 503 denial that Envoy passes on (never leaving it
// waiting out its Check timeout); it exports extauthz_store_up, and Check
// refuses what `extauthz revoke` records, within a second.
func TestServeWithTheStore(t *testing.T) {
	redis := redistest.Start(t)
	redis.Kill() // unreachable when serve starts
	_, signingKey := newSigningKey(t)
	cfg := testkit.WriteFile(t, "c.yaml", e2eConfig(testSecret, signingKey)+"databroker_storage_type: redis\n")
	env := map[string]string{"DATABROKER_STORAGE_CONNECTION_STRING": redis.URL()}
	s := startServe(t, env, "--config", cfg, "--log-format", "json")
	s.waitServing(t)
	now := time.Now()
	c := &identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}, SID: "sess-bob"}
	c.ID, c.Issuer, c.Subject = "tok-bob", "authenticate.example.com", "bob"
	c.Audience = jwt.ClaimStrings{"app.example.com"}
	c.IssuedAt, c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)), jwt.NewNumericDate(now.Add(time.Hour))
	bob, err := identity.Mint(c, testSecret)
	if err != nil {
		t.Fatal(err)
	}

	health := func() healthpb.HealthCheckResponse_ServingStatus {
		conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return healthpb.HealthCheckResponse_UNKNOWN
		}
		return resp.GetStatus()
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + s.http + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("before the first full read of the store it is not ready", func(t *testing.T) {
		if code, _ := get("/healthz"); code != http.StatusServiceUnavailable {
			t.Errorf("/healthz = %d, want 503", code)
		}
		if st := health(); st == healthpb.HealthCheckResponse_SERVING {
			t.Errorf("gRPC health = %v before the store was read", st)
		}
		if _, m := get("/metrics"); !strings.Contains(m, "extauthz_store_up 0") {
			t.Errorf("/metrics lacks extauthz_store_up 0")
		}
	})
	t.Run("before the first full read of the store Check answers 503 UNAVAILABLE at once", func(t *testing.T) {
		// `extauthz check` waits 5 s at most: an unanswered Check fails here.
		got := runCheck(t, s.grpc, "--url", "http://app.example.com/", "--token", bob)
		if got.decision != "DENY" || got.status != http.StatusServiceUnavailable || !strings.Contains(got.body, check.ReasonStarting) {
			t.Errorf("want a 503 denial saying the authorizer is starting:\n%s", got.raw)
		}
	})
	t.Run("before the first full read of the store Envoy passes the sidecar's 503 on", func(t *testing.T) {
		_, grpcPort, _ := net.SplitHostPort(s.grpc)
		_, httpPort, _ := net.SplitHostPort(s.http)
		gp, _ := strconv.Atoi(grpcPort)
		hp, _ := strconv.Atoi(httpPort)
		e := envoytest.Start(t, envoytest.Options{GRPCPort: gp, HTTPPort: hp})
		req, _ := http.NewRequest(http.MethodGet, e.URLFor("app.example.com")+"/", nil)
		req.Header.Set("Authorization", "Pomerium "+bob)
		resp, err := e.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		// Envoy's own answer to a Check it gave up on (its 0.5 s timeout)
		// would be a bare 503: the body shows the sidecar answered.
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), check.ReasonStarting) {
			t.Errorf("through Envoy: %d %q, want the sidecar's 503", resp.StatusCode, body)
		}
	})

	redis.Restart()
	t.Run("once the store answers it is ready", func(t *testing.T) {
		if !s.waitFor(func() bool { code, _ := get("/healthz"); return code == http.StatusOK }) {
			t.Fatalf("/healthz never became 200\n%s", s)
		}
		if st := health(); st != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("gRPC health = %v, want SERVING", st)
		}
		if _, m := get("/metrics"); !strings.Contains(m, "extauthz_store_up 1") {
			t.Errorf("/metrics lacks extauthz_store_up 1")
		}
	})

	t.Run("a revocation from the CLI is refused by Check within a second", func(t *testing.T) {
		tok := bob
		if got := runCheck(t, s.grpc, "--url", "http://app.example.com/", "--token", tok); got.decision != "ALLOW" {
			t.Fatalf("before the revocation:\n%s", got.raw)
		}
		if r := execBin(t, invocation{args: []string{"revoke", "--config", cfg, "--sid", "sess-bob"}, env: env}); r.code != exitOK {
			t.Fatalf("revoke:\n%s", r)
		}
		deadline := time.Now().Add(time.Second)
		for {
			got := runCheck(t, s.grpc, "--url", "http://app.example.com/", "--token", tok)
			if got.status == http.StatusUnauthorized && strings.Contains(got.raw, identity.ReasonRevoked) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still answered after 1s:\n%s", got.raw)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
