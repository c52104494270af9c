package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/impersonation"
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

	var cfg *config.Config
	if *configPath == "" {
		cfg, err = config.Demo()
	} else {
		cfg, err = config.Load(*configPath)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "extauthz: the config cannot be used:\n%v\n", err)
		return errReported
	}
	if cfg.KeyGenerated {
		log.Warn("no signing_key configured; generated one in memory, so upstream assertions change keys on every restart")
	}
	snap, settings, err := build(cfg)
	if err != nil {
		return err
	}

	checker := check.New(snap, log)
	pages := web.New(settings, log)
	var draining atomic.Bool
	pages.Ready = func() bool { return !draining.Load() }

	grpcLis, err := net.Listen("tcp", cfg.GRPCAddress)
	if err != nil {
		return fmt.Errorf("grpc_address: %w", err)
	}
	httpLis, err := net.Listen("tcp", cfg.HTTPAddress)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("http_address: %w", err)
	}
	g := grpc.NewServer(
		// Envoy keeps long-lived HTTP/2 connections and pings them.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	checker.Register(g)
	httpSrv := &http.Server{
		Handler:           pages,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 2)
	go func() { errc <- g.Serve(grpcLis) }()
	go func() { errc <- httpSrv.Serve(httpLis) }()
	log.Info("serving",
		zap.String("config", cfg.Source),
		zap.String("grpc_address", grpcLis.Addr().String()),
		zap.String("http_address", httpLis.Addr().String()),
		zap.Int("routes", len(cfg.Routes.Routes)),
		zap.String("signing_key_id", cfg.Key.ID))
	if *configPath == "" {
		if err := printDemo(e, cfg, grpcLis.Addr().String(), httpLis.Addr().String()); err != nil {
			return err
		}
	}

	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigc)
	reload := func(why string) {
		if *configPath == "" {
			log.Info("the demo config has no file to reload")
			return
		}
		next, err := config.Load(*configPath)
		if err == nil {
			var s *check.Snapshot
			var w *web.Settings
			if s, w, err = build(next); err == nil {
				checker.Swap(s)
				pages.Swap(w)
				log.Info("config reloaded", zap.String("trigger", why), zap.Int("routes", len(next.Routes.Routes)))
				return
			}
		}
		log.Error("config reload refused; the previous config keeps serving", zap.String("trigger", why), zap.Error(err))
	}
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("listener stopped: %w", err)
		case sig := <-sigc:
			if sig == syscall.SIGHUP {
				reload("SIGHUP")
				continue
			}
			log.Info("draining", zap.String("signal", sig.String()), zap.Duration("drain_timeout", time.Duration(cfg.DrainTimeout)))
			draining.Store(true)
			checker.Shutdown()
			shutdown(g, httpSrv, time.Duration(cfg.DrainTimeout))
			log.Info("stopped")
			return nil
		}
	}
}

// shutdown lets in-flight Checks and page requests finish, up to drain.
func shutdown(g *grpc.Server, h *http.Server, drain time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	go func() { _ = h.Shutdown(ctx) }()
	select {
	case <-done:
	case <-ctx.Done():
		g.Stop()
	}
	_ = h.Close()
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

// build derives the Check snapshot and the page settings from a validated config.
func build(cfg *config.Config) (*check.Snapshot, *web.Settings, error) {
	verifier, err := identity.NewVerifier(identity.VerifierOptions{
		Secrets:     cfg.Secrets(),
		Issuer:      cfg.Issuer,
		Leeway:      identity.MaxLeeway,
		RevokedIDs:  cfg.RevokedTokenIDs,
		MaxLifetime: time.Duration(cfg.MaxServiceAccountLifetime),
	})
	if err != nil {
		return nil, nil, err
	}
	engine := &decision.Engine{
		Policy:     cfg.Routes,
		Verifier:   verifier,
		Rules:      impersonation.NewRules(cfg.Administrators, cfg.ImpersonationProtected, cfg.ImpersonationDefaultAccess, identity.MaxLeeway),
		CookieName: cfg.CookieName,
	}
	claimHeaders := make([]check.ClaimHeader, 0, len(cfg.ClaimHeaders))
	for _, ch := range cfg.ClaimHeaders {
		claimHeaders = append(claimHeaders, check.ClaimHeader{Claim: ch.Claim, Header: ch.Header})
	}
	snap := &check.Snapshot{
		Engine:       engine,
		Key:          cfg.Key,
		Issuer:       cfg.Issuer,
		ClaimHeaders: claimHeaders,
		Assertions:   check.NewAssertionCache(100_000),
	}
	jwks, err := identity.MarshalJWKS(append([]*identity.SigningKey{cfg.Key}, cfg.PreviousKeys...)...)
	if err != nil {
		return nil, nil, err
	}
	settings := &web.Settings{
		Engine:                     engine,
		Secret:                     cfg.SharedSecret,
		CookieName:                 cfg.CookieName,
		CookieDomain:               cfg.CookieDomain,
		CookieSecure:               cfg.CookieSecureOrDefault(),
		CookieExpire:               time.Duration(cfg.CookieExpire),
		Issuer:                     cfg.Issuer,
		JWKS:                       jwks,
		ImpersonationMaxDuration:   time.Duration(cfg.ImpersonationMaxDuration),
		ImpersonationRequireReason: cfg.ImpersonationRequireReasonOrDefault(),
	}
	return snap, settings, nil
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
