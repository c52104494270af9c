// Command echo is the demo upstream: it answers every request with the
// request it received as JSON, so you can see exactly which headers Envoy and
// the sidecar let through (the assertion, the claim headers, and the absence
// of your token).
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"slices"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	flag.Parse()
	srv := &http.Server{Addr: *addr, Handler: http.HandlerFunc(echo), ReadHeaderTimeout: 5 * time.Second}
	log.Printf("echo upstream on http://%s", *addr)
	log.Fatal(srv.ListenAndServe())
}

func echo(w http.ResponseWriter, r *http.Request) {
	headers := make(map[string]string, len(r.Header))
	names := make([]string, 0, len(r.Header))
	for name := range r.Header {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		headers[name] = strings.Join(r.Header.Values(name), ", ")
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{
		"method":  r.Method,
		"host":    r.Host,
		"path":    r.URL.RequestURI(),
		"headers": headers,
	})
}
