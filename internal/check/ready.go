package check

import (
	"context"
	"net/http"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.uber.org/zap"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/negotiate"
)

// ReasonStarting is the body of every Check answered before the server is
// ready (see NotReady).
const ReasonStarting = "the authorizer is starting: it has not yet read the revocations shared by its replicas; try again shortly"

// NotReady holds the server back until Ready: its gRPC health says
// NOT_SERVING, and every Check is answered at once with a denial, 503 and
// gRPC code UNAVAILABLE, whose body says why. A replica that has not read
// the shared store would allow tokens every other replica refuses, so it must
// decide nothing; and it must still answer, promptly: a listener that
// accepted connections and never answered (as before) made Envoy wait out its
// Check timeout on every request, and an Envoy configured with
// failure_mode_allow would then let them through. A denial is refused by
// Envoy whatever failure_mode_allow says. Call it before Register.
func (s *Server) NotReady(why string) {
	s.notReady.Store(&why)
	s.setHealth(healthpb.HealthCheckResponse_NOT_SERVING)
}

// Ready ends NotReady: Checks are decided and health is SERVING (unless
// Shutdown was called, which health keeps to).
func (s *Server) Ready() {
	// Health first: whoever sees IsReady (serve's /healthz) then also sees
	// SERVING over gRPC.
	s.setHealth(healthpb.HealthCheckResponse_SERVING)
	s.notReady.Store(nil)
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

// notReadyAnswer is the Check answer while NotReady is in force: 503 with
// Retry-After, in the client's format, naming the request id. It is never
// audited (nothing was decided about anyone) but is counted and logged, the
// log saying why the replica is not ready.
func (s *Server) notReadyAnswer(why string, headers map[string]string, requestID string) *authv3.CheckResponse {
	format := negotiate.Preferred(headers["accept"])
	add := func(k, v string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: v},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}
	}
	if ce := s.log.Check(zap.WarnLevel, "request refused: not ready"); ce != nil && s.denials.allow(s.now()) {
		ce.Write(zap.String("request_id", requestID), zap.String("why", why))
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.Unavailable), Message: why},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
			Headers: []*corev3.HeaderValueOption{
				add("content-type", format.ContentType()),
				add("cache-control", "no-store"),
				add("retry-after", "1"),
				add("x-request-id", requestID),
			},
			Body: renderBody(format, http.StatusServiceUnavailable, ReasonStarting, requestID),
		}},
	}
}

// notReadyDecision is what metrics see of a Check answered while not ready:
// a refusal of its own kind (the reason class "not_ready"), never an allow.
func notReadyDecision() *decision.Decision {
	return &decision.Decision{Kind: decision.KindNotReady, Status: decision.StatusUnavailable, Reason: ReasonStarting}
}
