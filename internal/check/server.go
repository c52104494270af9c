// Package check is the Envoy ext_authz v3 gRPC server: it maps a CheckRequest
// to the pure decision, and the decision to a CheckResponse that either lets
// the request upstream with identity headers or answers it with a status and
// a body. It fails closed: anything unexpected is a denial.
package check

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/extauthz/extauthz/internal/audit"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/negotiate"
	"github.com/extauthz/extauthz/internal/requestid"
)

// Server answers Envoy's Check calls. The zero value is not usable; see New.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	snap   atomic.Pointer[Snapshot]
	log    *zap.Logger
	audit  *audit.Log
	now    func() time.Time
	health *health.Server
	// notReady, while set, is why Checks are not decided yet (NotReady).
	notReady atomic.Pointer[string]
	// Observe, when set, is called once per Check with the decision and its
	// duration; metrics hang here.
	Observe func(d *decision.Decision, elapsed time.Duration)
	// DenialLogDropped, when set, is called for each denial the info log
	// left out because more than DenialLogsPerSecond came in one second.
	DenialLogDropped func()

	denials denialSampler
}

// DenialLogsPerSecond is how many denials a second are logged at info; the
// rest are counted (DenialLogDropped), so a client hammering a protected
// route cannot flood the log while an operator can still find any request
// id a denial body showed, at normal rates.
const DenialLogsPerSecond = 100

// denialSampler lets the first limit denials of each wall-clock second
// through; a mutex is enough, since it is taken on denials only.
type denialSampler struct {
	mu     sync.Mutex
	second int64
	logged int
	limit  int // 0 means DenialLogsPerSecond
}

func (ds *denialSampler) allow(now time.Time) bool {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if sec := now.Unix(); sec != ds.second {
		ds.second, ds.logged = sec, 0
	}
	limit := ds.limit
	if limit <= 0 {
		limit = DenialLogsPerSecond
	}
	if ds.logged >= limit {
		return false
	}
	ds.logged++
	return true
}

// SetDenialLogLimit replaces DenialLogsPerSecond; tests use it.
func (s *Server) SetDenialLogLimit(n int) {
	s.denials.mu.Lock()
	s.denials.limit = n
	s.denials.mu.Unlock()
}

// logDenial logs a denial at info, as the one line an operator holding a
// denial body's request id looks for: the request id, the route, the status
// and the reason class (the decision's kind, and a refused token's cause).
// It never logs the token, the reason sentence (a policy denial's lists
// whom the route allows) or any email: who impersonated whom is the audit
// log's.
func (s *Server) logDenial(d *decision.Decision, in decision.Request, requestID string, now time.Time) {
	ce := s.log.Check(zap.InfoLevel, "request denied")
	if ce == nil {
		return
	}
	if !s.denials.allow(now) {
		if s.DenialLogDropped != nil {
			s.DenialLogDropped()
		}
		return
	}
	route := ""
	if d.Route != nil {
		route = d.Route.Name
		if route == "" {
			route = d.Route.From
		}
	}
	fields := []zap.Field{zap.String("request_id", requestID), zap.String("route", route),
		zap.Int("status", int(d.Status)), zap.String("reason_class", d.Kind.String()),
		zap.String("host", in.Host), zap.String("path", audit.PathOnly(in.Path))}
	if d.Kind == decision.KindBadToken {
		fields = append(fields, zap.String("cause", d.Cause.String()))
	}
	ce.Write(fields...)
}

// New returns a server answering with snap. log receives operational logs;
// audit entries go to log.Named("audit").
func New(snap *Snapshot, log *zap.Logger) *Server {
	s := &Server{log: log, audit: audit.New(log), now: time.Now, health: health.NewServer()}
	s.snap.Store(snap)
	return s
}

// ServerOptions are the gRPC server options a Check server runs with.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		// Envoy keeps long-lived HTTP/2 connections and pings them.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// A fixed pool of stream workers keeps their grown stacks, instead of a
		// fresh goroutine per Check growing (and copying) its stack every time.
		// grpc-go hands a stream to a worker only if one is idle at that
		// instant (else it starts a goroutine), so the pool is sized for the
		// Checks in flight, not the CPUs: with one worker per CPU almost every
		// Check under load ran on a fresh stack (runtime.newstack was 12% of
		// the server's CPU, issue 19).
		grpc.NumStreamWorkers(uint32(streamWorkersPerCPU * runtime.GOMAXPROCS(0))),
	}
}

// streamWorkersPerCPU sizes the stream worker pool: an idle worker is a
// parked goroutine with its grown stack (a few KiB each). With 64 Checks in
// flight on 2 CPUs (BenchmarkCheckOverGRPC), one worker per CPU left 0.92 of
// every Check to a fresh goroutine, 16 per CPU 0.28, 32 per CPU 0.004, and
// the process's CPU per call fell by about 10%.
const streamWorkersPerCPU = 32

// Snapshot returns the snapshot in force.
func (s *Server) Snapshot() *Snapshot { return s.snap.Load() }

// Swap atomically replaces the snapshot in force; Checks already running
// finish with the one they started with.
func (s *Server) Swap(snap *Snapshot) { s.snap.Store(snap) }

// SetClock replaces the clock; tests use it.
func (s *Server) SetClock(now func() time.Time) { s.now = now }

// Register adds the Authorization and gRPC health services to g and marks
// both serving, or not serving while NotReady is in force.
func (s *Server) Register(g *grpc.Server) {
	authv3.RegisterAuthorizationServer(g, s)
	healthpb.RegisterHealthServer(g, s.health)
	if s.IsReady() {
		s.setHealth(healthpb.HealthCheckResponse_SERVING)
	} else {
		s.setHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	}
}

// Shutdown reports NOT_SERVING on the health service, so load balancers and
// Envoy's health checks stop sending before the listener closes.
func (s *Server) Shutdown() { s.health.Shutdown() }

// Check implements envoy.service.auth.v3.Authorization/Check.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := s.now()
	snap := s.snap.Load()
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	// From here on, headers are read only through this map, whichever field
	// Envoy filled.
	headers := requestHeaders(httpReq)
	requestID := requestid.Pick(headers["x-request-id"], httpReq.GetId())
	if why := s.notReady.Load(); why != nil {
		resp := s.notReadyAnswer(*why, headers, requestID)
		if s.Observe != nil {
			s.Observe(notReadyDecision(), s.now().Sub(start))
		}
		return resp, nil
	}
	if httpReq == nil || httpReq.GetHost() == "" {
		d := &decision.Decision{Kind: decision.KindBadRequest, Status: decision.StatusBadRequest, Reason: decision.ReasonBadRequest}
		resp := snap.deny(d, negotiate.Text, requestID, nil)
		s.logDenial(d, decision.Request{}, requestID, start)
		if s.Observe != nil {
			s.Observe(d, s.now().Sub(start))
		}
		return resp, nil
	}
	header := func(name string) string { return headers[name] }
	format := negotiate.Preferred(headers["accept"])
	in := decision.Request{
		RouteName: req.GetAttributes().GetContextExtensions()["route"],
		Host:      httpReq.GetHost(),
		Path:      httpReq.GetPath(),
		Method:    httpReq.GetMethod(),
		Header:    header,
		Browser:   format == negotiate.HTML,
	}
	d := snap.Engine.Decide(in, start)
	var resp *authv3.CheckResponse
	if d.Allowed() {
		var err error
		resp, err = snap.allow(&d, httpReq, headers, start)
		if err != nil {
			// Fail closed: an assertion we cannot sign is never an allow.
			s.log.Error("building allow response", zap.Error(err), zap.String("request_id", requestID))
			d.Fail()
		}
	}
	if !d.Allowed() {
		resp = snap.deny(&d, format, requestID, httpReq)
		s.logDenial(&d, in, requestID, start)
		if ce := s.log.Check(zap.DebugLevel, "denied"); ce != nil {
			ce.Write(zap.Int("status", int(d.Status)), zap.String("reason", d.Reason),
				zap.String("host", in.Host), zap.String("path", audit.PathOnly(in.Path)), zap.String("request_id", requestID))
		}
		if d.Cause == identity.CauseIssuer || d.Cause == identity.CauseAudience {
			// Most such refusals are a token minted for another place: say
			// what this sidecar expects, never the token.
			if ce := s.log.Check(zap.DebugLevel, "token refused: minted for another issuer or host"); ce != nil {
				expected := snap.Issuer
				if expected == "" {
					expected = "any (authenticate_service_url is unset)"
				}
				ce.Write(zap.String("cause", d.Cause.String()), zap.String("expected_issuer", expected),
					zap.String("request_host", identity.HostWithoutPort(in.Host)), zap.String("request_id", requestID))
			}
		}
	}
	// The answer is final: the audit log records what the client got.
	s.audit.Decision(&d, audit.Request{Host: in.Host, Method: in.Method, Path: in.Path, RequestID: requestID})
	if s.Observe != nil {
		s.Observe(&d, s.now().Sub(start))
	}
	return resp, nil
}
