// Command noop is the floor of the benchmarks: an Envoy ext_authz v3 gRPC
// server that answers every Check with OK and no headers, doing no work.
// Anything ours costs above it is the price of authenticating.
//
//	noop -addr 127.0.0.1:9191
//	noop -addr unix:///tmp/noop.sock
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/extauthz/extauthz/internal/check"
)

type server struct{}

// ok is shared by every answer: the response is never modified after it is
// built, and grpc-go only reads it while marshalling.
var ok = &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.OK)}}

func (server) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return ok, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9191", "listen address: host:port, or unix:///path for a Unix socket")
	flag.Parse()
	network, address := "tcp", *addr
	if path, ok := strings.CutPrefix(address, "unix://"); ok {
		network, address = "unix", path
	}
	lis, err := net.Listen(network, address)
	if err != nil {
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
	// The same server options as extauthz serve (check.ServerOptions, not a
	// copy: the copy this was missed the stream workers ours gained), so
	// only the handler differs.
	g := grpc.NewServer(check.ServerOptions()...)
	authv3.RegisterAuthorizationServer(g, server{})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; g.Stop() }()
	if err := g.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
}
