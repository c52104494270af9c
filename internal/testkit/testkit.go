// Package testkit is what the tests of several packages share, so that none
// re-types it: a shared secret and a signing key, minting tokens, the demo
// config, the sidecar run as a process, the in-process Check server, and a
// browser that keeps cookies. Only tests import it.
package testkit

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/golang-jwt/jwt/v5"
)

// Secret is a fresh shared secret: base64 of 32 random bytes.
func Secret(t testing.TB) string {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(raw)
}

// SigningKey is a fresh signing key, and its encoding as signing_key takes it.
func SigningKey(t testing.TB) (*identity.SigningKey, string) {
	t.Helper()
	key, err := identity.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	encoded, err := identity.EncodeSigningKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, encoded
}

// Mint signs c with secret.
func Mint(t testing.TB, secret string, c identity.Claims) string {
	t.Helper()
	tok, err := identity.Mint(&c, secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// WriteFile writes content to name in a fresh temporary directory and
// returns its path.
func WriteFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// DemoConfig is internal/config/demo.yaml, the config `extauthz serve` runs
// without --config, with a fresh secret and key, the gRPC and HTTP addresses
// on loopback ports, and its public port 8080 (in every from and in
// authenticate_service_url) replaced by listen. extra is appended.
func DemoConfig(t testing.TB, listen, grpcPort, httpPort int, extra string) (config, secret string) {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "config", "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	secret = Secret(t)
	_, key := SigningKey(t)
	demo := strings.ReplaceAll(string(raw), ".localhost:8080", ".localhost:"+strconv.Itoa(listen))
	demo = strings.Replace(demo, "grpc_address: 127.0.0.1:9191", "grpc_address: 127.0.0.1:"+strconv.Itoa(grpcPort), 1)
	demo = strings.Replace(demo, "http_address: 127.0.0.1:9292", "http_address: 127.0.0.1:"+strconv.Itoa(httpPort), 1)
	return "shared_secret: " + secret + "\nsigning_key: " + key + "\n" + demo + extra, secret
}

// Clock is a settable clock, safe for the server reading it while the test
// moves it.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock is a Clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Fill sets what c leaves unset: the issuer, the audience, an expiry an hour
// after now and an issue time a minute before it.
func Fill(c identity.Claims, issuer string, now time.Time, audience ...string) identity.Claims {
	if c.Issuer == "" {
		c.Issuer = issuer
	}
	if c.Audience == nil {
		c.Audience = audience
	}
	if c.ExpiresAt == nil {
		c.ExpiresAt = jwt.NewNumericDate(now.Add(time.Hour))
	}
	if c.IssuedAt == nil {
		c.IssuedAt = jwt.NewNumericDate(now.Add(-time.Minute))
	}
	return c
}
