package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/identity"
)

// The identities every workload uses. Administrators impersonate users; users
// are in the engineering group the app route allows; guests are not.
const (
	issuerHost = "authenticate.localhost"
	appHost    = "app.localhost"
	nAdmins    = 10
)

func userEmail(i int) string  { return fmt.Sprintf("user%06d@corp.example", i) }
func guestEmail(i int) string { return fmt.Sprintf("guest%04d@partner.example", i) }
func adminEmail(i int) string { return fmt.Sprintf("admin%02d@corp.example", i) }

// secrets are the shared secret and signing key of one run.
type secrets struct {
	shared     string
	signingKey string // base64 PEM, as the config wants it
}

func newSecrets() (secrets, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return secrets{}, err
	}
	key, err := identity.GenerateSigningKey()
	if err != nil {
		return secrets{}, err
	}
	enc, err := identity.EncodeSigningKey(key)
	if err != nil {
		return secrets{}, err
	}
	return secrets{shared: base64.StdEncoding.EncodeToString(raw), signingKey: enc}, nil
}

// mint signs a session token for the app hosts, valid for a day.
func (s secrets) mint(c identity.Claims) (string, error) {
	now := time.Now()
	c.Issuer = issuerHost
	c.Audience = jwt.ClaimStrings{"app.localhost", "admin.localhost", "wiki.localhost"}
	c.IssuedAt = jwt.NewNumericDate(now.Add(-time.Minute))
	c.NotBefore = jwt.NewNumericDate(now.Add(-time.Minute))
	c.ExpiresAt = jwt.NewNumericDate(now.Add(24 * time.Hour))
	return identity.Mint(&c, s.shared)
}

// startOurs writes a config and runs `extauthz serve` on it with logs at
// the configured level, and waits for /healthz.
func startOurs(env *runEnv) (p *proc, grpcAddr string, err error) {
	return startOursAt(env, "")
}

// startOursAt is startOurs with grpc_address set to grpcAddress (the Envoy
// layer's unix:///path); "" picks a free TCP port.
func startOursAt(env *runEnv, grpcAddress string) (*proc, string, error) {
	return onFreePorts(func() (*proc, string, error) { return startOursOnce(env, grpcAddress) })
}

// onFreePorts runs start, which starts a child on ports freeAddr picks, up
// to three times while the child fails because a port was taken before it
// bound it: other packages' tests pick ports too. Other free ports will do.
func onFreePorts(start func() (*proc, string, error)) (p *proc, addr string, err error) {
	for try := 0; ; try++ {
		p, addr, err = start()
		if !portTaken(err) || try == 2 {
			return p, addr, err
		}
	}
}

// portTaken says whether err is a child's failure to bind a taken port.
func portTaken(err error) bool {
	return err != nil && strings.Contains(err.Error(), "address already in use")
}

func startOursOnce(env *runEnv, grpcAddress string) (p *proc, grpcAddr string, err error) {
	cfg, grpcAddr, httpAddr, err := writeOursConfig(env.dir, env.sec, grpcAddress)
	if err != nil {
		return nil, "", err
	}
	var extra []string
	if env.cfg.OursGOMEMLIMIT != "" {
		extra = append(extra, "GOMEMLIMIT="+env.cfg.OursGOMEMLIMIT)
	}
	p, err = startProcEnv("extauthz", env.bins.Ours, extra, "serve", "--config", cfg, "--log-level", env.cfg.LogLevel, "--log-format", "json")
	if err != nil {
		return nil, "", err
	}
	p.metricsURL = "http://" + httpAddr + "/metrics"
	if err := p.waitReady(20*time.Second, httpReady("http://"+httpAddr+"/healthz", 200)); err != nil {
		p.Stop()
		return nil, "", err
	}
	return p, grpcAddr, nil
}

// writeOursConfig writes a sidecar config listening on free ports, or for
// gRPC on grpcAddress when it is set.
func writeOursConfig(dir string, sec secrets, grpcAddress string) (path, grpcAddr, httpAddr string, err error) {
	grpcAddr = grpcAddress
	if grpcAddr == "" {
		if grpcAddr, err = freeAddr(); err != nil {
			return "", "", "", err
		}
	}
	if httpAddr, err = freeAddr(); err != nil {
		return "", "", "", err
	}
	body, err := oursConfig(sec, grpcAddr, httpAddr)
	if err != nil {
		return "", "", "", err
	}
	path = filepath.Join(dir, fmt.Sprintf("extauthz-%d.yaml", time.Now().UnixNano()))
	return path, grpcAddr, httpAddr, os.WriteFile(path, body, 0o600)
}

// oursConfig is the demo config (the routes of the bundled Envoy config:
// app, admin, wiki, public), on the given listeners, with the run's secrets,
// the bench's administrators, and hosts without the demo's port, as the
// bench's Envoy configs and requests name them.
func oursConfig(sec secrets, grpcAddr, httpAddr string) ([]byte, error) {
	admins := make([]string, nAdmins)
	for i := range admins {
		admins[i] = adminEmail(i)
	}
	demo := string(config.DemoYAML())
	for _, r := range []struct{ old, new string }{
		{"grpc_address: 127.0.0.1:9191\n", "grpc_address: " + grpcAddr + "\n"},
		{"http_address: 127.0.0.1:9292\n", "http_address: " + httpAddr + "\n"},
		{"administrators:\n  - alice@corp.example\n", "administrators: [" + strings.Join(admins, ", ") + "]\n"},
		{".localhost:8080", ".localhost"},
	} {
		if !strings.Contains(demo, r.old) {
			return nil, fmt.Errorf("the demo config (internal/config/demo.yaml) no longer holds %q, which the bench replaces", r.old)
		}
		demo = strings.ReplaceAll(demo, r.old, r.new)
	}
	return []byte("shared_secret: " + sec.shared + "\nsigning_key: " + sec.signingKey + "\n" + demo), nil
}

// profileOurs runs bench/profserver (our Check path with a CPU profile) under
// a closed loop of w for d, after the same warm-up as the measured runs, and
// returns `go tool pprof -top` of it. Before the warm-up was left out of the
// profile, the first sightings of every session (an ES256 signature and a
// full verification each) weighed in it as the warm runs never see them.
func profileOurs(env *runEnv, w *workload, d time.Duration) (string, error) {
	cfg, grpcAddr, _, err := writeOursConfig(env.dir, env.sec, "")
	if err != nil {
		return "", err
	}
	prof := filepath.Join(env.dir, "server."+w.Key+".cpu.prof")
	if env.cfg.ProfileDir != "" {
		if err := os.MkdirAll(env.cfg.ProfileDir, 0o755); err != nil {
			return "", err
		}
		prof = filepath.Join(env.cfg.ProfileDir, "server."+w.Key+".cpu.prof")
	}
	p, err := startProc("profserver", env.bins.Prof, "-config", cfg, "-cpuprofile", prof, "-after", env.cfg.Warmup.String())
	if err != nil {
		return "", err
	}
	defer p.Stop()
	if err := p.waitReady(20*time.Second, tcpReady(grpcAddr)); err != nil {
		return "", err
	}
	c, err := dialGRPC(grpcAddr, env.cfg.GRPCConns)
	if err != nil {
		return "", err
	}
	c.closedLoop(w.pool, env.cfg.GRPCConns*env.cfg.GRPCStreams, env.cfg.Warmup+d)
	c.Close()
	p.Stop()
	if err := p.Err(); err != nil {
		return "", p.failure(err)
	}
	// More nodes than the report shows: the targets quote functions further down.
	return pprofTop(env.root, env.bins.Prof, prof, 100)
}

// startNoop runs the no-op ext_authz server.
func startNoop(bin string) (*proc, string, error) {
	return startOnFreeAddr("noop", bin, tcpReady)
}

// startNoopAt runs the no-op server on the Unix socket sock, with more
// flags when given.
func startNoopAt(bin, sock string, flags ...string) (*proc, error) {
	p, err := startProc("noop", bin, append([]string{"-addr", "unix://" + sock}, flags...)...)
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(10*time.Second, dialReady("unix", sock)); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// startEcho runs the echo upstream.
func startEcho(bin string) (*proc, string, error) {
	return startOnFreeAddr("echo", bin, func(addr string) func() error { return httpReady("http://"+addr+"/", 200) })
}

// startOnFreeAddr runs bin -addr on a free loopback address and waits until
// ready(addr) says it serves there.
func startOnFreeAddr(name, bin string, ready func(addr string) func() error) (*proc, string, error) {
	return onFreePorts(func() (*proc, string, error) { return startOnFreeAddrOnce(name, bin, ready) })
}

func startOnFreeAddrOnce(name, bin string, ready func(addr string) func() error) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	p, err := startProc(name, bin, "-addr", addr)
	if err != nil {
		return nil, "", err
	}
	if err := p.waitReady(10*time.Second, ready(addr)); err != nil {
		p.Stop()
		return nil, "", err
	}
	return p, addr, nil
}

// oidcIssuer is the local issuer of the bearer JWTs oauth2-proxy verifies: an
// RSA key whose public half oauth2-proxy reads from a file (no discovery, no
// provider process).
type oidcIssuer struct {
	url      string
	clientID string
	key      *rsa.PrivateKey
	pubFile  string
}

func newOIDCIssuer(dir string) (*oidcIssuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	pub := filepath.Join(dir, "oidc-issuer.pub.pem")
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return &oidcIssuer{url: "http://issuer.localhost", clientID: "bench", key: key, pubFile: pub}, nil
}

// mint signs an RS256 ID token for email: what an OIDC provider would hand a
// client, and what oauth2-proxy's --skip-jwt-bearer-tokens accepts.
func (o *oidcIssuer) mint(email string) (string, error) {
	now := time.Now()
	sub := strings.SplitN(email, "@", 2)[0]
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": o.url, "aud": o.clientID, "sub": sub, "email": email, "email_verified": true,
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(24 * time.Hour).Unix(),
	})
	tok.Header["kid"] = "bench"
	return tok.SignedString(o.key)
}

// startOAuth2Proxy runs oauth2-proxy as an auth server for Envoy's HTTP
// ext_authz: it verifies bearer JWTs of the local issuer, answers 200 for a
// valid one (its static upstream) and 401 for anything else under
// /oauth2/auth/ (an API route: no redirect to a sign-in page), and passes
// the identity back in X-Auth-Request-* headers. Every log is off, as ours
// runs at warn.
func startOAuth2Proxy(bin string, iss *oidcIssuer) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	cookieSecret := make([]byte, 16)
	if _, err := rand.Read(cookieSecret); err != nil {
		return nil, "", err
	}
	args := []string{
		"--http-address=" + addr,
		"--provider=oidc",
		"--client-id=" + iss.clientID,
		"--client-secret=unused",
		"--cookie-secret=" + fmt.Sprintf("%x", cookieSecret), // 32 hex characters = a 32-byte secret
		"--cookie-secure=false",
		"--email-domain=*",
		"--upstream=static://200",
		"--skip-oidc-discovery",
		"--oidc-issuer-url=" + iss.url,
		"--oidc-public-key-file=" + iss.pubFile,
		"--login-url=" + iss.url + "/authorize",
		"--redeem-url=" + iss.url + "/token",
		"--skip-jwt-bearer-tokens=true",
		"--api-route=^/oauth2/auth/",
		"--set-xauthrequest=true",
		"--request-logging=false",
		"--standard-logging=false",
		"--auth-logging=false",
	}
	p, err := startProc("oauth2-proxy", bin, args...)
	if err != nil {
		return nil, "", err
	}
	if err := p.waitReady(20*time.Second, httpReady("http://"+addr+"/ping", 200)); err != nil {
		p.Stop()
		return nil, "", err
	}
	return p, addr, nil
}

// stopAll stops processes concurrently.
func stopAll(ps ...*proc) {
	done := make(chan struct{})
	n := 0
	for _, p := range ps {
		if p == nil {
			continue
		}
		n++
		go func() { p.Stop(); done <- struct{}{} }()
	}
	for range n {
		<-done
	}
}
