package config

// This file words unknown keys: "did you mean" by edit distance, and keys
// that belong to the other level (a route key at the top, or the reverse).

import (
	"fmt"
	"strings"
)

// unknownKey words an unknown key's problem, with a hint when the key looks
// like a known one or belongs elsewhere.
func unknownKey(key string, fs *fieldSet) string {
	msg := fmt.Sprintf("unknown key %q", key)
	other := routeFields
	if fs == routeFields {
		other = configFields
	}
	switch {
	case fs == configFields && key == "routes":
		return msg + " (routes go under \"policy\")"
	case fs == routeFields && key == "to":
		return msg + " (the upstream is configured in Envoy, not here)"
	}
	// A Pomerium key this sidecar does not have: say so and what to use,
	// before an edit-distance guess could suggest an unrelated key
	// (cookie_secret is not a misspelt cookie_secure).
	hints := pomeriumKeys
	if fs == routeFields {
		hints = pomeriumRouteKeys
	}
	if hint, ok := hints[strings.ToLower(key)]; ok {
		return msg + " (a Pomerium setting not supported here: " + hint + ")"
	}
	if best := closest(key, fs); best != "" {
		return msg + fmt.Sprintf(" (did you mean %q?)", best)
	}
	if _, ok := other.byKey[key]; ok {
		if fs == routeFields {
			return msg + " in a route (it is a top-level key: check the indentation)"
		}
		return msg + " (it is a route key: routes go in the list under \"policy\")"
	}
	return msg
}

// Hints for Pomerium's own settings (its configuration reference) that do
// not exist here, top-level and in a route.
const (
	hintEnvoyTLS   = "TLS for users is Envoy's; to secure Envoy's Check connection use grpc_tls_cert_file and grpc_tls_key_file"
	hintEnvoyRoute = "proxying is Envoy's: configure it on the Envoy route that sends this host to the upstream"
	hintServices   = "there is one service: Envoy's ext_authz filter calls grpc_address, and the pages are on http_address"
	hintDirectory  = "groups come from the provider's groups claim at each sign-in; there is no directory sync"
	hintSecretFile = "set the value through the environment instead (its variable is the key in upper case), for example from a mounted secret"
)

var pomeriumKeys = map[string]string{
	"cookie_secret":                  "the cookie keys are derived from shared_secret, so remove it",
	"cookie_secret_file":             "the cookie keys are derived from shared_secret, so remove it",
	"cookie_http_only":               "the session cookie is always HttpOnly",
	"cookie_same_site":               "the session cookie is always SameSite=Lax",
	"idp_provider":                   "name the provider by idp_provider_url, its OpenID Connect issuer URL: any OIDC provider works, there is no provider list",
	"idp_service_account":            hintDirectory,
	"idp_refresh_directory_interval": hintDirectory,
	"idp_refresh_directory_timeout":  hintDirectory,
	"idp_client_secret_file":         hintSecretFile,
	"shared_secret_file":             hintSecretFile,
	"signing_key_file":               hintSecretFile,
	"address":                        "users reach Envoy; this sidecar listens on grpc_address (Check) and http_address (pages, /metrics)",
	"insecure_server":                hintEnvoyTLS,
	"autocert":                       hintEnvoyTLS,
	"autocert_dir":                   hintEnvoyTLS,
	"certificate":                    hintEnvoyTLS,
	"certificate_file":               hintEnvoyTLS,
	"certificate_key":                hintEnvoyTLS,
	"certificate_key_file":           hintEnvoyTLS,
	"certificates":                   hintEnvoyTLS,
	"authorize_service_url":          hintServices,
	"databroker_service_url":         hintServices + "; a shared store is databroker_storage_type",
	"services":                       hintServices,
	"log_level":                      "use serve --log-level",
	"proxy_log_level":                "Envoy's log level is Envoy's (its --log-level)",
	"metrics_address":                "metrics are served at /metrics on http_address",
	"timeout_read":                   "timeouts are Envoy's",
	"timeout_write":                  "timeouts are Envoy's",
	"timeout_idle":                   "timeouts are Envoy's",
	"forward_auth_url":               "Envoy's ext_authz filter is the only way in",
}

var pomeriumRouteKeys = map[string]string{
	"policy":                               "Pomerium Policy Language is not read; write the rule with allowed_users, allowed_groups, allowed_domains, allow_any_authenticated_user or allow_public_unauthenticated_access",
	"allowed_idp_claims":                   "only emails, groups and domains are matched, with allowed_users, allowed_groups or allowed_domains",
	"cors_allow_preflight":                 "preflight OPTIONS requests are decided like any other: let Envoy's CORS filter answer them before ext_authz",
	"prefix_rewrite":                       hintEnvoyRoute,
	"regex_rewrite_pattern":                hintEnvoyRoute,
	"regex_rewrite_substitution":           hintEnvoyRoute,
	"host_rewrite":                         hintEnvoyRoute,
	"host_rewrite_header":                  hintEnvoyRoute,
	"host_path_regex_rewrite_pattern":      hintEnvoyRoute,
	"host_path_regex_rewrite_substitution": hintEnvoyRoute,
	"preserve_host_header":                 hintEnvoyRoute,
	"allow_websockets":                     hintEnvoyRoute,
	"allow_spdy":                           hintEnvoyRoute,
	"timeout":                              hintEnvoyRoute,
	"idle_timeout":                         hintEnvoyRoute,
	"tls_skip_verify":                      hintEnvoyRoute,
	"tls_server_name":                      hintEnvoyRoute,
	"tls_custom_ca":                        hintEnvoyRoute,
	"tls_client_cert":                      hintEnvoyRoute,
	"tls_client_key":                       hintEnvoyRoute,
	"set_response_headers":                 hintEnvoyRoute,
	"rewrite_response_headers":             hintEnvoyRoute,
	"load_balancing_policy":                hintEnvoyRoute,
	"health_checks":                        hintEnvoyRoute,
	"kubernetes_service_account_token":     hintEnvoyRoute,
}

// closest returns the known key nearest to key (case-insensitive match, or at
// most two edits away), or "".
func closest(key string, fs *fieldSet) string {
	lower := strings.ToLower(key)
	best, bestDist := "", 3
	for _, f := range fs.list {
		if f.key == lower {
			return f.key
		}
		if len(lower) > 24 || len(f.key) > 40 {
			continue
		}
		if dd := editDistance(lower, f.key); dd < bestDist && dd*3 <= len(f.key) {
			best, bestDist = f.key, dd
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
