package testkit

import (
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Registrar is a gRPC service set: check.Server registers the
// Authorization and health services.
type Registrar interface{ Register(*grpc.Server) }

// ServeCheck serves srv (a check.Server) over gRPC on a loopback port until
// the test ends, and returns a connection to it. A maxMsg above zero raises
// the message size limit on both sides; opts are more server options (such
// as check.ServerOptions).
func ServeCheck(t testing.TB, srv Registrar, maxMsg int, opts ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	serverOpts := opts
	clientOpts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if maxMsg > 0 {
		serverOpts = append(serverOpts, grpc.MaxRecvMsgSize(maxMsg))
		clientOpts = append(clientOpts, grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(maxMsg)))
	}
	g := grpc.NewServer(serverOpts...)
	srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), clientOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
