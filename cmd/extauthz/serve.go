package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/listen"
	"github.com/extauthz/extauthz/internal/metrics"
	"github.com/extauthz/extauthz/internal/reload"
	"github.com/extauthz/extauthz/internal/store"
	"github.com/extauthz/extauthz/internal/web"
)

// serve runs the ext_authz gRPC server and the HTTP pages until SIGTERM or SIGINT.
func serve(e *env, args []string) error {
	fs := newFlagSet(e, "serve")
	configPath := fs.String("config", "", "config file (YAML); without it an embedded demo config runs")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "", "log format: json or console (default json, console for the demo)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q.", fs.Arg(0))
	}
	var level zapcore.Level
	if err := level.Set(*logLevel); err != nil {
		return usagef("-log-level must be debug, info, warn or error, got %q.", *logLevel)
	}
	format := *logFormat
	if format == "" {
		format = "json"
		if *configPath == "" {
			format = "console"
		}
	}
	if format != "json" && format != "console" {
		return usagef("-log-format must be json or console, got %q.", format)
	}
	log, err := newLogger(level, format)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	setMemoryLimit(log)

	var cfg *config.Config
	var content []byte // the file as read, so a reload can tell whether it changed
	if *configPath == "" {
		cfg, err = config.Demo()
	} else {
		cfg, content, err = reload.Load(*configPath, os.LookupEnv)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "extauthz: the config cannot be used:\n%v\n", err)
		return errReported
	}
	if cfg.KeyGenerated {
		log.Warn("no signing_key configured; generated one in memory, so upstream assertions change keys on every restart")
	}
	snap, settings, err := reload.Build(cfg)
	if err != nil {
		return err
	}
	// The store replicas share (memory unless configured). It is opened once:
	// a reload that changes its settings is logged as needing a restart.
	st, err := store.Open(cfg.DatabrokerStorageType, cfg.DatabrokerStorageConnectionString,
		store.Options{TTL: cfg.RevocationTTLOrDefault(), Logger: log})
	if err != nil {
		return fmt.Errorf("databroker_storage_connection_string: %w", err)
	}
	defer func() { _ = st.Close() }()
	snap.Engine.Revocations = st // the page settings share the engine

	// Signals are caught from here on: a SIGTERM during start-up drains
	// instead of killing the process mid-way.
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigc)

	m := metrics.New()
	m.Registry().MustRegister(st.Collector())
	checker := check.New(snap, log)
	// checks counts answered Checks, so a drain can tell when Envoy has
	// stopped sending.
	var checks atomic.Uint64
	checker.DenialLogDropped = m.DenialLogDropped
	checker.Observe = func(d *decision.Decision, elapsed time.Duration) {
		m.ObserveCheck(d, elapsed)
		checks.Add(1)
	}
	pages := web.New(settings, log)
	pages.SetStore(st)
	pages.Metrics = m.Handler()
	// /healthz is 503 until both listeners serve and the store was read in
	// full, and again while draining. The store's part is asked of the
	// checker, not the store: the checker turns ready after the store does,
	// and /healthz must never say ready while gRPC health still says not.
	var ready, draining atomic.Bool
	pages.Ready = func() bool { return ready.Load() && checker.IsReady() && st.Ready() && !draining.Load() }
	m.ReloadSucceeded(time.Now(), false)
	reloader := reload.New(cfg, reload.Options{Path: *configPath, Check: checker, Web: pages, Revocations: st, Metrics: m, Log: log, Content: content})
	defer reloader.Close()

	grpcAddr, err := listen.ParseAddress(cfg.GRPCAddress)
	if err != nil {
		return fmt.Errorf("grpc_address: %w", err)
	}
	grpcLis, err := listen.Listen(grpcAddr)
	if err != nil {
		return fmt.Errorf("grpc_address: %w", err)
	}
	// Closed here too, for a return before gRPC serves it.
	defer grpcLis.Close()
	httpLis, err := net.Listen("tcp", cfg.HTTPAddress)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("http_address: %w", err)
	}
	grpcOpts := check.ServerOptions()
	if cfg.GRPCTLS != nil {
		// Every handshake takes the certificate and client CA of the config
		// in force, so a reload rotates them for new connections.
		current := func() *listen.Material { return reloader.Current().GRPCTLS }
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(listen.ServerConfig(cfg.GRPCTLS, current))))
	}
	g := grpc.NewServer(grpcOpts...)
	httpSrv := &http.Server{
		Handler:           pages,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 2)
	// Check is decided only once the store's revocations were read in full:
	// before that it would allow tokens other replicas refuse. Until then
	// Check is answered at once with 503 (UNAVAILABLE, a denial whatever
	// Envoy's failure_mode_allow), health is NOT_SERVING and /healthz is 503.
	storeWait, stopStoreWait := context.WithCancel(context.Background())
	defer stopStoreWait()
	if !st.Ready() {
		log.Info("answering Check with 503 until the first full read of the store", zap.String("store", st.Backend().Describe()))
		checker.HoldUntil(storeWait, "the first full read of the store ("+st.Backend().Describe()+")", st.WaitReady)
	}
	checker.Register(g)
	go func() { errc <- g.Serve(grpcLis) }()
	go func() { errc <- httpSrv.Serve(httpLis) }()
	ready.Store(true)

	stopWatch := func() {}
	if *configPath != "" {
		if stop, err := reloader.Watch(reload.DefaultDebounce); err != nil {
			log.Warn("not watching the config file; SIGHUP still reloads it", zap.Error(err))
		} else {
			stopWatch = stop
		}
	}
	defer func() { stopWatch() }()

	log.Info("serving",
		zap.String("config", cfg.Source),
		zap.String("grpc_address", listenedOn(grpcAddr, grpcLis)),
		zap.String("grpc_transport", grpcTransport(cfg)),
		zap.String("http_address", httpLis.Addr().String()),
		zap.Int("routes", len(cfg.CompiledPolicy.Routes)),
		zap.String("signing_key_id", cfg.Key.ID),
		zap.String("store", st.Backend().Describe()))
	if *configPath == "" {
		if err := printDemo(e, cfg, grpcLis.Addr().String(), httpLis.Addr().String()); err != nil {
			return err
		}
	}

	for {
		select {
		case err := <-errc:
			draining.Store(true)
			checker.Shutdown()
			g.Stop()
			_ = httpSrv.Close()
			return fmt.Errorf("listener stopped: %w", err)
		case sig := <-sigc:
			if sig == syscall.SIGHUP {
				_ = reloader.Reload("SIGHUP")
				continue
			}
			drain := reloader.Current().DrainTimeoutOrDefault()
			log.Info("draining: health is NOT_SERVING and /healthz 503; Checks are answered until Envoy stops sending, in-flight ones finish, then exit",
				zap.String("signal", sig.String()), zap.Duration("drain_timeout", drain))
			start := time.Now()
			draining.Store(true)
			checker.Shutdown()
			stopWatch()
			stopWatch = func() {}
			forced := lameDuck(checks.Load, drain, sigc)
			if forced == "" {
				forced = drainAndStop(g, httpSrv, drain-time.Since(start), sigc)
			} else {
				g.Stop()
				_ = httpSrv.Close()
			}
			if forced != "" {
				log.Warn("stopped before in-flight requests finished", zap.String("because", forced))
			} else {
				log.Info("stopped", zap.Duration("drained_in", time.Since(start)))
			}
			return nil
		}
	}
}

// lameDuck keeps the listeners open after a SIGTERM while Checks keep
// arriving: Envoy beside the sidecar is draining too and still asks about the
// requests it finishes, and closing the listener under it would fail them.
// Health already says NOT_SERVING, so nothing new is routed here. It returns
// "" when it is time to stop accepting: no Check has arrived for a quiet
// period (a second, or a quarter of drain if shorter), or half of drain has
// passed. A second SIGTERM or SIGINT cuts it short; then it returns why.
func lameDuck(checks func() uint64, drain time.Duration, sigc <-chan os.Signal) (forced string) {
	quiet := min(time.Second, drain/4)
	deadline := time.Now().Add(drain / 2)
	tick := time.NewTicker(max(quiet/10, time.Millisecond))
	defer tick.Stop()
	last, lastChange := checks(), time.Now()
	for {
		select {
		case sig := <-sigc:
			if sig != syscall.SIGHUP {
				return "second " + sig.String()
			}
		case now := <-tick.C:
			if n := checks(); n != last {
				last, lastChange = n, now
			}
			if now.Sub(lastChange) >= quiet || !now.Before(deadline) {
				return ""
			}
		}
	}
}

// drainAndStop stops accepting, lets in-flight Checks and page requests
// finish, and returns when they have, or stops them when drain has passed or
// a second SIGTERM or SIGINT arrives on sigc (nil: none). It returns why it
// stopped them, or "" when everything finished.
func drainAndStop(g *grpc.Server, h *http.Server, drain time.Duration, sigc <-chan os.Signal) (forced string) {
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	grpcDone := make(chan struct{})
	go func() { g.GracefulStop(); close(grpcDone) }()
	httpDone := make(chan struct{})
	go func() { _ = h.Shutdown(ctx); close(httpDone) }()
	for grpcDone != nil || httpDone != nil {
		select {
		case <-grpcDone:
			grpcDone = nil
		case <-httpDone:
			httpDone = nil
		case sig := <-sigc:
			if sig == syscall.SIGHUP {
				continue
			}
			forced = "second " + sig.String()
		case <-ctx.Done():
			forced = "drain_timeout passed"
		}
		if forced != "" {
			g.Stop()
			_ = h.Close()
			return forced
		}
	}
	_ = h.Close()
	return ""
}

// listenedOn is the address a listener is bound to, in grpc_address's form:
// host:port with the port the system picked, or unix:///path.
func listenedOn(a listen.Address, l net.Listener) string {
	if a.Network == listen.Unix {
		return a.String()
	}
	return l.Addr().String()
}

// grpcTransport says how grpc_address is secured, for the start-up log.
func grpcTransport(cfg *config.Config) string {
	switch {
	case cfg.GRPCTLS == nil:
		return "plaintext"
	case cfg.GRPCTLS.MutualTLS:
		return "tls, client certificate required"
	}
	return "tls"
}

func newLogger(level zapcore.Level, format string) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(level)
	cfg.Encoding = format
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	if format == "console" {
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	}
	cfg.Sampling = nil // audit entries must never be sampled away
	cfg.DisableStacktrace = true
	l, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("building logger: %w", err)
	}
	return l, nil
}

// selfCommand is how a person reruns this binary: "go run ./cmd/extauthz"
// when it was started by go run, else its own name.
func selfCommand(argv0 string) string {
	if strings.Contains(argv0, "go-build") {
		return "go run ./cmd/extauthz"
	}
	return argv0
}

var errNoDemo = errors.New("demo config has no route named app")

// defaultMemoryLimit is the soft heap limit serve runs under unless GOMEMLIMIT
// says otherwise. A sidecar beside every proxy should have a flat, small
// footprint: the caches are bounded, and near this limit the GC runs more
// often instead of letting garbage double the heap. It is soft: live data
// above it is never refused, the GC just works harder.
const defaultMemoryLimit = 48 << 20

func setMemoryLimit(log *zap.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(defaultMemoryLimit)
	log.Debug("soft memory limit set; override with GOMEMLIMIT", zap.Int64("bytes", defaultMemoryLimit))
}
