// Package envoy holds the bundled Envoy configuration (envoy.yaml): the
// bootstrap that puts the extauthz sidecar in front of an application. Its
// tests decode the YAML into go-control-plane's v3 Bootstrap, check the wiring
// and run `envoy --mode validate` on it when an Envoy binary is available.
package envoy
