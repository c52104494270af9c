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
	// OnChange, when set, is called after every change of what Answer
	// decides with (a snapshot swapped in, the server becoming ready or not),
	// once the change is visible to Answer: whoever keeps answers (the
	// module's answer cache, Replay) drops them. Set it before serving.
	OnChange func()

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
		// Check's request read lean and its response by generated code, not
		// by reflection (codec.go); other messages as grpc-go's default.
		grpc.ForceServerCodecV2(codec{}),
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
func (s *Server) Swap(snap *Snapshot) {
	s.snap.Store(snap)
	s.changed()
}

// changed calls OnChange, if set.
func (s *Server) changed() {
	if s.OnChange != nil {
		s.OnChange()
	}
}

// SetClock replaces the clock; tests use it.
func (s *Server) SetClock(now func() time.Time) { s.now = now }

// Register adds the Authorization and gRPC health services to g and marks
// both serving, or not serving while NotReady is in force. Its Check decodes
// lean on a server with ServerOptions' codec, generically on any other.
func (s *Server) Register(g *grpc.Server) {
	g.RegisterService(&authorizationDesc, s)
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

// Check implements envoy.service.auth.v3.Authorization/Check: the request
// read from the CheckRequest, answered by Answer.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	r := checkRequest(req)
	c := new(checkAnswer)
	s.answer(&r, &c.a)
	return c.response(), nil
}
