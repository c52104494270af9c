// Command extauthz-module is the extauthz decision as an Envoy dynamic module:
// a shared library (go build -buildmode=c-shared -o libextauthz.so) that
// Envoy 1.40 loads as the HTTP filter envoy.filters.http.dynamic_modules and
// that decides each request in process, with the same code the sidecar's
// ext_authz server runs. See docs/module.md.
package main

func main() {} // required by -buildmode=c-shared; never run
