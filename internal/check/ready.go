package check

import (
	"context"
	"net/http"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.uber.org/zap"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/negotiate"
)

// ReasonStarting is the body of every request answered before the server is
// ready (see NotReady).
const ReasonStarting = "the authorizer is starting: it has not yet read the revocations shared by its replicas; try again shortly"

// NotReady holds the server back until Ready: its gRPC health says
// NOT_SERVING, and every Answer (so every Check, and every request the
// dynamic module asks about) is at once a denial, 503 (gRPC code UNAVAILABLE
// for Check), whose body says why. A replica that has not read
// the shared store would allow tokens every other replica refuses, so it must
// decide nothing; and it must still answer, promptly: a listener that
// accepted connections and never answered (as before) made Envoy wait out its
// Check timeout on every request, and an Envoy configured with
// failure_mode_allow would then let them through. A denial is refused by
// Envoy whatever failure_mode_allow says. Call it before Register.
func (s *Server) NotReady(why string) {
	s.notReady.Store(&why)
	s.changed()
	s.setHealth(healthpb.HealthCheckResponse_NOT_SERVING)
}

// Ready ends NotReady: Checks are decided and health is SERVING (unless
// Shutdown was called, which health keeps to).
func (s *Server) Ready() {
	// Health first: whoever sees IsReady (serve's /healthz) then also sees
	// SERVING over gRPC.
	s.setHealth(healthpb.HealthCheckResponse_SERVING)
	s.notReady.Store(nil)
	s.changed()
}

// HoldUntil puts the server in NotReady(why) and returns at once; a
// goroutine calls Ready when wait (e.g. the store's WaitReady) returns nil.
// If wait returns an error (its ctx ended: the server is stopping), the
// server stays not ready.
func (s *Server) HoldUntil(ctx context.Context, why string, wait func(context.Context) error) {
	s.NotReady(why)
	go func() {
		start := time.Now()
		if err := wait(ctx); err != nil {
			s.log.Info("stopped waiting to become ready", zap.String("why_not_ready", why), zap.Error(err))
			return
		}
		s.Ready()
		s.log.Info("ready: deciding Checks", zap.String("was_waiting_for", why), zap.Duration("after", time.Since(start)))
	}()
}

// IsReady reports whether Checks are decided (NotReady not in force).
func (s *Server) IsReady() bool { return s.notReady.Load() == nil }

func (s *Server) setHealth(st healthpb.HealthCheckResponse_ServingStatus) {
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, st)
}

// notReadyAnswer is the answer while NotReady is in force, whether Check or
// the module asks: 503 with Retry-After, in the client's format, naming the
// request id (Check makes it gRPC UNAVAILABLE). It is never audited (nothing
// was decided about anyone) but is counted and logged, the log saying why the
// server is not ready.
func (s *Server) notReadyAnswer(why string, headers RequestHeaders, requestID string, a *Answer) {
	format := negotiate.Preferred(headers.Get("accept"))
	if ce := s.log.Check(zap.WarnLevel, "request refused: not ready"); ce != nil && s.denials.allow(s.now()) {
		ce.Write(zap.String("request_id", requestID), zap.String("why", why))
	}
	a.Status, a.Reason = http.StatusServiceUnavailable, why
	a.Body = renderBody(format, http.StatusServiceUnavailable, ReasonStarting, requestID)
	a.setHeader("content-type", format.ContentType())
	a.setHeader("cache-control", "no-store")
	a.setHeader("retry-after", "1")
	a.setHeader("x-request-id", requestID)
}

// notReadyDecision is what metrics see of a Check answered while not ready:
// a refusal of its own kind (the reason class "not_ready"), never an allow.
func notReadyDecision() *decision.Decision {
	return &decision.Decision{Kind: decision.KindNotReady, Status: decision.StatusUnavailable, Reason: ReasonStarting}
}
