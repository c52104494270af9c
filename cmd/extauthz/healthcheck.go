package main

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/listen"
)

// healthcheck asks a running sidecar's gRPC health service, for container
// probes that have no grpc_health_probe: exit 0 when SERVING, 1 otherwise.
func healthcheck(e *env, args []string) error {
	fs := newFlagSet(e, "healthcheck")
	path := fs.String("config", "", "config file whose grpc_address to ask (default: --addr)")
	addr := fs.String("addr", config.DefaultGRPCAddress, "ext_authz gRPC address (host:port or unix:///path), when no --config is given")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := parseOnlyFlags(fs, args); err != nil {
		return err
	}
	target := *addr
	if *path != "" {
		cfg, err := config.Load(*path)
		if err != nil {
			return fmt.Errorf("reading the config for its grpc_address: %w", err)
		}
		if cfg.GRPCTLS != nil {
			return fmt.Errorf("grpc_address %s serves TLS (grpc_tls_cert_file) and healthcheck speaks plaintext gRPC: probe http_address's /healthz instead", cfg.GRPCAddress)
		}
		target = cfg.GRPCAddress
	}
	a, err := listen.ParseAddress(target)
	if err != nil {
		if *path == "" {
			return usagef("--addr %v", err)
		}
		return fmt.Errorf("grpc_address: %w", err)
	}
	target = a.Target()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", target, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("asking the health service at %s: %w", target, err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("the sidecar at %s is %s", target, s)
	}
	fmt.Fprintf(e.stdout, "SERVING (%s)\n", target)
	return nil
}
