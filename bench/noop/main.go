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

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/extauthz/extauthz/internal/check"
)

type server struct{ answer *authv3.CheckResponse }

// ok is shared by every answer: the response is never modified after it is
// built, and grpc-go only reads it while marshalling.
var ok = &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.OK)}}

// likeExtauthz is an allow shaped as extauthz's for the bench's requests: an
// assertion of the same length, the two claim headers, set by overwrite, and
// the session token's removal. Envoy does with it all it does with ours'.
func likeExtauthz(email string) *authv3.CheckResponse {
	set := func(name, value string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: name, Value: value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
	}
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{
				// About the length of the ES256 assertions ours signs for the
				// bench's users (0.8 KiB).
				set(check.HeaderAssertion, strings.Repeat("a", 820)),
				set("x-pomerium-claim-email", email),
				set("x-pomerium-claim-groups", "engineering"),
			},
			HeadersToRemove: []string{"authorization"},
		}},
	}
}

func (s server) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.answer, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9191", "listen address: host:port, or unix:///path for a Unix socket")
	shaped := flag.String("answer-like-extauthz", "", "answer every Check with an allow shaped as extauthz's for this email (default: an empty OK)")
	flag.Parse()
	srv := server{answer: ok}
	if *shaped != "" {
		srv.answer = likeExtauthz(*shaped)
	}
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
	authv3.RegisterAuthorizationServer(g, srv)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; g.Stop() }()
	if err := g.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
}
