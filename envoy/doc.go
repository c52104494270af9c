// Package envoy holds the bundled Envoy configurations: envoy.yaml, the
// bootstrap that puts the extauthz sidecar in front of an application with
// Envoy at the edge, envoy-behind-lb.yaml, the same for Envoy behind a
// TLS-terminating load balancer, envoy-uds.yaml, the same reaching the sidecar
// over a Unix domain socket, and envoy-mtls.yaml, the same reaching it over
// mutual TLS. Its tests decode every bundled YAML into
// go-control-plane's v3 Bootstrap, check the wiring and run
// `envoy --mode validate` on it when an Envoy binary is available.
package envoy
