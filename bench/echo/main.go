// Command echo is the benchmarks' upstream: the fastest useful app behind
// Envoy. It answers 200 with "ok <identity>", where the identity is the email
// the authorizer passed upstream (X-Pomerium-Claim-Email from extauthz,
// X-Auth-Request-Email from oauth2-proxy), and marks its answers with
// X-Bench-Echo so the runner can tell them from an authorizer's.
//
//	echo -addr 127.0.0.1:8081
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func handle(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Pomerium-Claim-Email")
	if id == "" {
		id = r.Header.Get("X-Auth-Request-Email")
	}
	h := w.Header()
	h["X-Bench-Echo"] = []string{"1"}
	h["Content-Type"] = []string{"text/plain"}
	_, _ = io.WriteString(w, "ok "+id+"\n")
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	flag.Parse()
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: http.HandlerFunc(handle), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; _ = srv.Close() }()
	if err := srv.Serve(lis); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}
