package check

import (
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// EnvoyLikeRequest is envoyLikeRequest for the package's external tests.
var EnvoyLikeRequest = envoyLikeRequest

// envoyLikeRequest is a CheckRequest shaped as Envoy 1.40 sends one: peers
// with addresses, the request time, 15 headers (token in Authorization), the protocol and size, TLS
// and metadata, the route in context_extensions. Most of it Check never reads.
func envoyLikeRequest(tb testing.TB, token string) *authv3.CheckRequest {
	tb.Helper()
	peer := func(addr string, port uint32) *authv3.AttributeContext_Peer {
		return &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}},
			Principal: "spiffe://cluster.local/ns/default/sa/frontend"}
	}
	md, err := structpb.NewStruct(map[string]any{"tenant": "acme", "tier": 2})
	if err != nil {
		tb.Fatal(err)
	}
	headers := map[string]string{
		":authority": "app.example.com", ":path": "/reports?q=1", ":method": "GET", ":scheme": "https",
		"accept":          "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
		"accept-encoding": "gzip, deflate, br", "accept-language": "en-GB,en;q=0.9",
		"authorization":   "Pomerium " + token,
		"cookie":          "theme=dark; lang=en; _ga=GA1.2.123456789.1700000000",
		"user-agent":      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
		"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https",
		"x-request-id":                   "d85750f9-3a93-4515-8bfb-38a6b45859b1",
		"x-envoy-expected-rq-timeout-ms": "15000", "sec-fetch-mode": "navigate",
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      peer("203.0.113.7", 51234),
		Destination: peer("10.0.0.5", 8443),
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: "1234567890123456789", Method: "GET", Headers: headers, Path: "/reports?q=1",
				Host: "app.example.com", Scheme: "https", Protocol: "HTTP/2", Size: 0,
			},
		},
		ContextExtensions: map[string]string{"route": "app", "tier": "gold"},
		MetadataContext:   &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.jwt": md}},
		TlsSession:        &authv3.AttributeContext_TLSSession{Sni: "app.example.com"},
	}}
}
