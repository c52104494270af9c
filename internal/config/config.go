// Package config loads and validates the sidecar's YAML configuration.
//
// A config is a YAML file with Pomerium-compatible keys (see Example for every
// key, documented). Environment variables named after the keys in upper case
// override them (SHARED_SECRET, COOKIE_EXPIRE, ADMINISTRATORS, ...); list-valued
// keys are comma-separated there, and POLICY holds base64 of a YAML route list.
// Every problem is reported at once, each with the file, line and column of the
// offending key or value.
package config

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/listen"
	"github.com/extauthz/extauthz/internal/policy"
	"github.com/extauthz/extauthz/internal/store"
)

// Defaults of the keys that have one.
const (
	DefaultCookieName                 = "_pomerium"
	DefaultCookieExpire               = 14 * time.Hour
	DefaultGRPCAddress                = "127.0.0.1:9191"
	DefaultHTTPAddress                = "127.0.0.1:9292"
	DefaultImpersonationDefaultAccess = identity.AccessReadWrite
	DefaultImpersonationMaxDuration   = 30 * time.Minute
	DefaultDrainTimeout               = 10 * time.Second
	DefaultDatabrokerStorageType      = StorageMemory
	DefaultRevocationTTL              = store.DefaultTTL

	// MaxSize is the largest config document accepted, in bytes.
	MaxSize = 4 << 20
	// DemoSource is the Source of the config Demo returns.
	DemoSource = "embedded demo"
	// MinSecretBytes is how many bytes a shared secret must decode to.
	MinSecretBytes = 32
)

// databroker_storage_type values.
const (
	// StorageMemory keeps the shared state in the process: one replica only.
	StorageMemory = "memory"
	// StorageRedis shares it through Redis, between every replica.
	StorageRedis = "redis"
)

// Duration is a time.Duration written as a Go duration string ("14h", "30m")
// in YAML and in the environment.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String renders d as Go does ("14h0m0s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText renders d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := parseDuration(string(text))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ClaimHeader is one jwt_claims_headers entry: the claim whose value is copied
// upstream, and the lower-case header it goes in.
type ClaimHeader struct {
	Claim  string
	Header string
}

// ClaimHeaderPrefix starts the header name of a claim listed without one.
const ClaimHeaderPrefix = "x-pomerium-claim-"

// Config is the sidecar's configuration. The YAML keys are Pomerium's (contract
// section 2, and section 7 for impersonation_*), all at the top level of the
// file; the embedded groups only sort them for the reader. Load and Parse fill
// in the defaults and the Derived fields at the end; a Config they return is
// valid, its policy compiled and its signing key ready.
type Config struct {
	TokenKeys
	// AuthenticateServiceURL is where sign-in happens; see Issuer.
	AuthenticateServiceURL string `yaml:"authenticate_service_url"`
	IdentityProvider
	CookieSettings
	Listeners

	// JWTClaimsHeaders are the claims copied into headers upstream, in order.
	// The key is written as a list of claim names, a mapping of header name
	// to claim name (as in Pomerium), or a string of claims separated by
	// commas or spaces; ClaimHeaders has the headers.
	JWTClaimsHeaders []string `yaml:"jwt_claims_headers"`
	// RevokedTokenIDs are jti values refused by every replica, from the
	// file; revocations made at run time go through the store.
	RevokedTokenIDs []string `yaml:"revoked_token_ids"`
	// MaxServiceAccountLifetime refuses tokens whose exp - iat exceeds it;
	// 0 means no limit.
	MaxServiceAccountLifetime Duration `yaml:"max_service_account_lifetime"`

	StoreSettings
	ImpersonationSettings

	Policy []policy.RouteSpec `yaml:"policy"`

	Derived
}

// TokenKeys are the keys of tokens and assertions, and their predecessors
// during a rotation.
type TokenKeys struct {
	// SharedSecret is base64 decoding to at least 32 bytes; its text, as
	// written, is the HS256 key of service-account and session tokens.
	SharedSecret string `yaml:"shared_secret"`
	// PreviousSharedSecrets still verify tokens, during a rotation.
	PreviousSharedSecrets []string `yaml:"previous_shared_secrets"`
	// SigningKey is base64 of a PEM EC P-256 private key that signs
	// x-pomerium-jwt-assertion; empty means one is generated (see KeyGenerated).
	SigningKey string `yaml:"signing_key"`
	// PreviousSigningKeys are still published in the JWKS, during a rotation.
	PreviousSigningKeys []string `yaml:"previous_signing_keys"`
}

// IdentityProvider is the OpenID Connect provider users sign in with.
type IdentityProvider struct {
	// IdpProviderURL is the OIDC issuer that sign-in discovers its
	// endpoints from; empty leaves sign-in off.
	IdpProviderURL string `yaml:"idp_provider_url"`
	// IdpClientID and IdpClientSecret are this client's registration with
	// the provider. The secret is never logged.
	IdpClientID     string `yaml:"idp_client_id"`
	IdpClientSecret string `yaml:"idp_client_secret"`
	// IdpScopes replace idp.DefaultScopes (openid, profile, email,
	// offline_access).
	IdpScopes []string `yaml:"idp_scopes"`
	// IdpAllowUnverifiedEmail accepts ID tokens whose email_verified is
	// absent or not true. Off by default: policies and administrators are
	// keyed on the address, which is only the user's when verified.
	IdpAllowUnverifiedEmail bool `yaml:"idp_allow_unverified_email"`
}

// CookieSettings shape the _pomerium session cookie.
type CookieSettings struct {
	CookieName string `yaml:"cookie_name"`
	// CookieSecure is nil when unset; read it with CookieSecureOrDefault.
	CookieSecure *bool    `yaml:"cookie_secure"`
	CookieExpire Duration `yaml:"cookie_expire"`
	CookieDomain string   `yaml:"cookie_domain"`
}

// Listeners are where serve answers: Check over gRPC, the pages over HTTP.
type Listeners struct {
	// GRPCAddress is host:port, or unix:///path for a Unix domain socket.
	GRPCAddress string `yaml:"grpc_address"`
	HTTPAddress string `yaml:"http_address"`
	// GRPCTLSCertFile and GRPCTLSKeyFile, both or neither, make grpc_address
	// serve TLS with this PEM certificate (chain) and private key; paths are
	// relative to the working directory. GRPCClientCAFile, which needs them,
	// makes it require a client certificate signed by one of its PEM CAs.
	GRPCTLSCertFile  string `yaml:"grpc_tls_cert_file"`
	GRPCTLSKeyFile   string `yaml:"grpc_tls_key_file"`
	GRPCClientCAFile string `yaml:"grpc_client_ca_file"`

	// DrainTimeout bounds how long serve waits for in-flight requests on
	// SIGTERM or SIGINT.
	DrainTimeout Duration `yaml:"drain_timeout"`
}

// StoreSettings are where replicas share revocations, sign-outs and used
// sign-in handoffs (contract section 9).
type StoreSettings struct {
	// DatabrokerStorageType is StorageMemory (the default: one replica) or
	// StorageRedis.
	DatabrokerStorageType string `yaml:"databroker_storage_type"`
	// DatabrokerStorageConnectionString is the Redis URL as Pomerium writes
	// it; see store.ParseConnectionString. It may hold a password: never
	// log it, log StorageTarget instead.
	DatabrokerStorageConnectionString string `yaml:"databroker_storage_connection_string"`
	// RevocationTTL is how long a revocation is kept (default 720h).
	RevocationTTL Duration `yaml:"revocation_ttl"`
}

// ImpersonationSettings are who may impersonate, and how narrowly
// (contract section 7).
type ImpersonationSettings struct {
	// Administrators are the emails (lower-cased) allowed to impersonate.
	Administrators []string `yaml:"administrators"`

	ImpersonationDefaultAccess string   `yaml:"impersonation_default_access"`
	ImpersonationMaxDuration   Duration `yaml:"impersonation_max_duration"`
	// ImpersonationRequireReason is nil when unset; read it with
	// ImpersonationRequireReasonOrDefault.
	ImpersonationRequireReason *bool    `yaml:"impersonation_require_reason"`
	ImpersonationProtected     []string `yaml:"impersonation_protected"`
}

// Derived is what Load and Parse compute from the settings; YAML never
// sets it.
type Derived struct {
	// ClaimHeaders pairs each claim of JWTClaimsHeaders with its lower-case
	// header: the one the mapping form names, else "x-pomerium-claim-<claim>".
	ClaimHeaders []ClaimHeader `yaml:"-"`

	// CompiledPolicy is Policy compiled: the routes Check matches.
	CompiledPolicy *policy.Policy `yaml:"-"`
	// Key signs upstream assertions: signing_key parsed, or generated in
	// memory when signing_key is absent (then KeyGenerated is true and the
	// caller should warn that assertions will not verify across restarts).
	Key          *identity.SigningKey `yaml:"-"`
	KeyGenerated bool                 `yaml:"-"`
	// PreviousKeys are previous_signing_keys parsed, without duplicates of Key
	// or of one another.
	PreviousKeys []*identity.SigningKey `yaml:"-"`
	// GRPCTLS is the grpc_tls_* files read and checked; nil without TLS.
	// Each Load and Parse reads the files again, so a reload picks up a
	// rotated certificate.
	GRPCTLS *listen.Material `yaml:"-"`
	// StorageTarget is databroker_storage_connection_string parsed; nil for
	// the memory store.
	StorageTarget *store.Target `yaml:"-"`
	// Warnings are what is allowed but probably unintended (a token that
	// could outlive revocation_ttl), located like problems.
	Warnings Problems `yaml:"-"`
	// Issuer is the lower-case host, without port, of authenticate_service_url:
	// the iss tokens must carry. "" when authenticate_service_url is unset.
	Issuer string `yaml:"-"`
	// Source is the file name the config was read from, or DemoSource.
	Source string `yaml:"-"`
}

// Load reads the config file at path and applies the environment overrides
// from the process environment. A config with problems returns a Problems
// error listing every one.
func Load(path string, opts ...LoadOption) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	return Parse(data, path, os.LookupEnv, opts...)
}

// LoadOption changes what Load and Parse require of a config.
type LoadOption func(*loadOptions)

type loadOptions struct {
	secretOptional bool
}

// WithoutSecret lets shared_secret be missing, for commands that only read
// the policy (explain: a policy preview or a CI lint should not need the
// root of trust). A secret that is given is still checked. A config loaded
// this way has no Secrets and must never be served.
func WithoutSecret() LoadOption {
	return func(o *loadOptions) { o.secretOptional = true }
}

// Parse reads a config from data, named name in problems and in Source, with
// overrides from lookupEnv (nil for none; os.LookupEnv for the process's). A
// config with problems returns a Problems error listing every one; other
// errors (no randomness for a key) are plain.
func Parse(data []byte, name string, lookupEnv func(string) (string, bool), opts ...LoadOption) (c *Config, err error) {
	defer func() {
		// A config must never take the sidecar down: a bug here is a
		// problem with the config, not a crash. FuzzParse runs parse
		// without this net.
		if r := recover(); r != nil {
			c, err = nil, Problems{{File: name, Msg: fmt.Sprintf("internal error reading the config: %v", r)}}
		}
	}()
	var o loadOptions
	for _, opt := range opts {
		opt(&o)
	}
	return parse(data, name, lookupEnv, o)
}

//go:embed demo.yaml
var demoYAML []byte

//go:embed example.yaml
var exampleYAML []byte

// DemoYAML is the text of the embedded demo config, without secrets: the
// routes, hosts and administrator that the demo, the tests and the
// benchmarks share.
func DemoYAML() []byte { return bytes.Clone(demoYAML) }

// DemoEnv names the environment variables the demo config honours: the
// secrets, so that tokens minted elsewhere (or kept from an earlier run)
// verify, and the listeners, so that a second demo or a busy port is not a
// dead end. Every other key stays the demo's, so that the routes, hosts and
// administrator its printed commands rely on are always there.
var DemoEnv = []string{"SHARED_SECRET", "SIGNING_KEY", "GRPC_ADDRESS", "HTTP_ADDRESS"}

// Demo returns the embedded demo config (see demo.yaml) with a fresh random
// shared secret and signing key, unless the process environment sets one of
// DemoEnv, which then applies as it would to any config.
func Demo() (*Config, error) { return DemoFrom(os.LookupEnv) }

// DemoFrom is Demo with the environment read through lookupEnv (nil for none).
func DemoFrom(lookupEnv func(string) (string, bool)) (*Config, error) {
	secret := make([]byte, MinSecretBytes)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generating demo shared secret: %w", err)
	}
	key, err := identity.GenerateSigningKey()
	if err != nil {
		return nil, err
	}
	encoded, err := identity.EncodeSigningKey(key)
	if err != nil {
		return nil, err
	}
	fill := map[string]string{
		"SHARED_SECRET": base64.StdEncoding.EncodeToString(secret),
		"SIGNING_KEY":   encoded,
	}
	return Parse(demoYAML, DemoSource, func(k string) (string, bool) {
		if lookupEnv != nil && slices.Contains(DemoEnv, k) {
			// Empty counts as unset, as for any config.
			if v, ok := lookupEnv(k); ok && strings.TrimSpace(v) != "" {
				return v, true
			}
		}
		v, ok := fill[k]
		return v, ok
	})
}

// Example returns a commented example config documenting every key. It has no
// shared_secret: set SHARED_SECRET, or add the key, before using it.
func Example() []byte {
	return append([]byte(nil), exampleYAML...)
}

// CookieSecureOrDefault reports whether the session cookie is Secure (default true).
func (c *Config) CookieSecureOrDefault() bool {
	return c.CookieSecure == nil || *c.CookieSecure
}

// ImpersonationRequireReasonOrDefault reports whether the impersonation page
// requires a reason (default true).
func (c *Config) ImpersonationRequireReasonOrDefault() bool {
	return c.ImpersonationRequireReason == nil || *c.ImpersonationRequireReason
}

// Secrets returns the shared secrets that verify tokens: the current one
// first, then the previous ones. Mint with Secrets()[0], that is SharedSecret.
func (c *Config) Secrets() []string {
	out := make([]string, 0, 1+len(c.PreviousSharedSecrets))
	if c.SharedSecret != "" {
		out = append(out, c.SharedSecret)
	}
	return append(out, c.PreviousSharedSecrets...)
}

// SigningKeys returns the keys published in the JWKS: Key first, then
// PreviousKeys.
func (c *Config) SigningKeys() []*identity.SigningKey {
	out := make([]*identity.SigningKey, 0, 1+len(c.PreviousKeys))
	if c.Key != nil {
		out = append(out, c.Key)
	}
	return append(out, c.PreviousKeys...)
}

// ExpireDuration is how long a session cookie lasts (cookie_expire, default 14h).
func (c *Config) ExpireDuration() time.Duration {
	if c.CookieExpire <= 0 {
		return DefaultCookieExpire
	}
	return c.CookieExpire.Std()
}

// ImpersonationMaxDurationOrDefault is how long a page-started impersonation
// lasts (impersonation_max_duration, default 30m).
func (c *Config) ImpersonationMaxDurationOrDefault() time.Duration {
	if c.ImpersonationMaxDuration <= 0 {
		return DefaultImpersonationMaxDuration
	}
	return c.ImpersonationMaxDuration.Std()
}

// RevocationTTLOrDefault is how long a revocation is kept (revocation_ttl,
// default 720h).
func (c *Config) RevocationTTLOrDefault() time.Duration {
	if c.RevocationTTL <= 0 {
		return DefaultRevocationTTL
	}
	return c.RevocationTTL.Std()
}

// SharedStore reports whether replicas share state through a store.
func (c *Config) SharedStore() bool { return c.DatabrokerStorageType == StorageRedis }

// DrainTimeoutOrDefault bounds the drain on shutdown (drain_timeout, default 10s).
func (c *Config) DrainTimeoutOrDefault() time.Duration {
	if c.DrainTimeout <= 0 {
		return DefaultDrainTimeout
	}
	return c.DrainTimeout.Std()
}

// ClaimHeaderNames returns the claim -> header pairs as a map, for callers that
// prefer one; ClaimHeaders keeps the configured order.
func (c *Config) ClaimHeaderNames() map[string]string {
	m := make(map[string]string, len(c.ClaimHeaders))
	for _, h := range c.ClaimHeaders {
		m[h.Claim] = h.Header
	}
	return m
}

// String names the config without any of its secrets, so that a Config that
// ends up in a log line leaks nothing.
func (c *Config) String() string {
	if c == nil {
		return "config(nil)"
	}
	n := len(c.Policy)
	if c.CompiledPolicy != nil {
		n = len(c.CompiledPolicy.Routes)
	}
	return fmt.Sprintf("config from %s (%d routes)", c.Source, n)
}
