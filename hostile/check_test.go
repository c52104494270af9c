package hostile_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/metrics"
	"github.com/extauthz/extauthz/internal/reload"
	"github.com/extauthz/extauthz/internal/testkit"
)

var secret = base64.StdEncoding.EncodeToString([]byte("hostile catalogue shared secret, 32+ bytes"))

const (
	appHost    = "app.corp.example"
	adminHost  = "admin.corp.example"
	publicHost = "public.corp.example"
	quietHost  = "quiet.corp.example"
	issuer     = "authenticate.corp.example"
)

func configYAML() string {
	return `shared_secret: ` + secret + `
administrators: [alice@corp.example]
authenticate_service_url: https://` + issuer + `
revoked_token_ids: [revoked-jti]
max_service_account_lifetime: 48h
impersonation_protected: [security@corp.example, security-team]
jwt_claims_headers: {X-Email: email, X-Pomerium-Claim-Groups: groups, X-Name: name}
policy:
  - name: app
    from: https://` + appHost + `
    allowed_groups: [engineering]
  - name: admin
    from: https://` + adminHost + `
    allowed_users: [alice@corp.example]
  - name: public
    from: https://` + publicHost + `
    allow_public_unauthenticated_access: true
  - name: quiet
    from: https://` + quietHost + `
    allow_any_authenticated_user: true
    pass_identity_headers: false
`
}

// server is the Check server built from configYAML the way serve builds it,
// on loopback gRPC, with metrics observing every Check.
type server struct {
	client  authv3.AuthorizationClient
	metrics *metrics.Metrics
}

func newServer(t *testing.T) *server {
	t.Helper()
	cfg, err := config.Parse([]byte(configYAML()), "hostile.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	snap, _, err := reload.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	srv := check.New(snap, zap.NewNop())
	srv.Observe = m.ObserveCheck
	conn := testkit.ServeCheck(t, srv, 16<<20)
	return &server{client: authv3.NewAuthorizationClient(conn), metrics: m}
}

// --- tokens -----------------------------------------------------------------

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func mac(h func() hash.Hash, key, input string) string {
	m := hmac.New(h, []byte(key))
	m.Write([]byte(input))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// jws assembles header.payload.signature from raw JSON, signing the input
// with HMAC-SHA256 under key (the real secret unless a case says otherwise).
func jws(header, payload, key string) string {
	input := b64(header) + "." + b64(payload)
	return input + "." + mac(sha256.New, key, input)
}

const hs256 = `{"alg":"HS256","typ":"JWT"}`

// claims renders a valid payload for bob (engineering), with overrides; a
// nil override deletes the claim.
func claims(over map[string]any) string {
	now := time.Now()
	c := map[string]any{
		"iss":    issuer,
		"sub":    "u-bob",
		"aud":    []string{appHost, adminHost, publicHost},
		"exp":    now.Add(time.Hour).Unix(),
		"iat":    now.Add(-time.Minute).Unix(),
		"nbf":    now.Add(-time.Minute).Unix(),
		"email":  "bob@corp.example",
		"user":   "bob",
		"groups": []string{"engineering"},
		"jti":    fmt.Sprintf("jti-%d", now.UnixNano()),
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	b, _ := json.Marshal(c)
	return string(b)
}

func valid() string { return jws(hs256, claims(nil), secret) }

// --- requests ---------------------------------------------------------------

type req struct {
	host    string
	path    string
	method  string
	headers map[string]string
	route   string
	raw     *authv3.CheckRequest // sent as is when set
}

func (r req) build() *authv3.CheckRequest {
	if r.raw != nil {
		return r.raw
	}
	if r.path == "" {
		r.path = "/"
	}
	if r.method == "" {
		r.method = "GET"
	}
	h := map[string]string{":authority": r.host, ":path": r.path, ":method": r.method, ":scheme": "https",
		"x-request-id": "hostile-1", "accept": "*/*", "user-agent": "hostile"}
	for k, v := range r.headers {
		h[strings.ToLower(k)] = v
	}
	cr := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Id: "1", Method: r.method, Host: r.host, Path: r.path, Scheme: "https",
			Protocol: "HTTP/1.1", Headers: h}}}}
	if r.route != "" {
		cr.Attributes.ContextExtensions = map[string]string{"route": r.route}
	}
	return cr
}

func pomerium(tok string) map[string]string {
	return map[string]string{"authorization": "Pomerium " + tok}
}

func app(headers map[string]string) req { return req{host: appHost, headers: headers} }

type checkCase struct {
	name string
	req  req
	want int
}

// tokenCases: each token is presented as "Authorization: Pomerium <token>" on
// the app route, which bob's valid token would pass; a refused token is a 401.
func tokenCases() []checkCase {
	now := time.Now()
	tok := func(name, token string) checkCase { return checkCase{"token: " + name, app(pomerium(token)), 401} }
	v := valid()
	parts := strings.Split(v, ".")
	hdr, pay, sig := parts[0], parts[1], parts[2]
	big := strings.Repeat("A", 9<<10)
	return []checkCase{
		tok(`alg "none", no signature`, b64(`{"alg":"none","typ":"JWT"}`)+"."+pay+"."),
		tok(`alg "none" with the real HS256 signature`, b64(`{"alg":"none","typ":"JWT"}`)+"."+pay+"."+sig),
		tok(`alg "None"`, b64(`{"alg":"None"}`)+"."+pay+"."),
		tok(`alg "hs256" in lower case`, jws(`{"alg":"hs256","typ":"JWT"}`, claims(nil), secret)),
		tok("HS512 under the real secret", func() string {
			in := b64(`{"alg":"HS512","typ":"JWT"}`) + "." + pay
			return in + "." + mac(sha512.New, secret, in)
		}()),
		tok("HS384 under the real secret", func() string {
			in := b64(`{"alg":"HS384","typ":"JWT"}`) + "." + pay
			return in + "." + mac(sha512.New384, secret, in)
		}()),
		tok("RS256 header with an HMAC signature (key confusion)", jws(`{"alg":"RS256","typ":"JWT"}`, claims(nil), secret)),
		tok("ES256 header with an HMAC signature", jws(`{"alg":"ES256","typ":"JWT"}`, claims(nil), secret)),
		tok("PS256 header", jws(`{"alg":"PS256"}`, claims(nil), secret)),
		tok("EdDSA header", jws(`{"alg":"EdDSA"}`, claims(nil), secret)),
		tok("no alg at all", jws(`{"typ":"JWT"}`, claims(nil), secret)),
		tok("alg as a number", jws(`{"alg":256}`, claims(nil), secret)),
		tok("kid pointing at /dev/null, signed with an empty key", jws(`{"alg":"HS256","kid":"../../../../dev/null"}`, claims(nil), "")),
		tok("kid with SQL injection, signed with a guessable key", jws(`{"alg":"HS256","kid":"x' UNION SELECT 'key"}`, claims(nil), "key")),
		tok("embedded jwk header with the attacker's key", jws(`{"alg":"HS256","jwk":{"kty":"oct","k":"YXR0YWNrZXI"}}`, claims(nil), "attacker")),
		tok("jku header to the attacker's key set", jws(`{"alg":"HS256","jku":"https://evil.example/jwks"}`, claims(nil), "attacker")),
		tok("signed with the secret's decoded bytes, not its text", func() string {
			raw, _ := base64.StdEncoding.DecodeString(secret)
			return jws(hs256, claims(nil), string(raw))
		}()),
		tok("signed with another secret", jws(hs256, claims(nil), "another secret of more than thirty-two bytes")),
		tok("the signature truncated by one character", v[:len(v)-1]),
		tok("the signature of another token", hdr+"."+b64(claims(map[string]any{"email": "alice@corp.example"}))+"."+sig),
		tok("empty segments", ".."),
		tok("an empty payload", hdr+".."+sig),
		tok("two segments", hdr+"."+pay),
		tok("four segments", v+"."+sig),
		tok("base64 with padding", hdr+"."+pay+"==."+sig),
		tok("standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(v)+"+/"),
		tok("a token of 9 KiB", hdr+"."+big+"."+sig),
		tok("a token of 1 MiB", strings.Repeat(v, (1<<20)/len(v))),
		tok("unicode in the segments", "ëÿ."+pay+".ñ"),
		tok("a NUL byte inside", hdr+"."+pay+"\x00."+sig),
		tok("a NUL byte after the token", v+"\x00"),
		tok("a header that is not JSON", b64("not json")+"."+pay+"."+sig),
		tok("a payload that is a JSON array", jws(hs256, `[1,2,3]`, secret)),
		tok("a payload that is null", jws(hs256, `null`, secret)),
		tok("a payload nested 10000 levels deep", jws(hs256, strings.Repeat(`{"a":`, 10000)+"1"+strings.Repeat("}", 10000), secret)),
		tok("duplicate alg keys, none last", jws(`{"alg":"HS256","alg":"none"}`, claims(nil), secret)),
		tok("duplicate aud keys, a foreign audience last", jws(hs256, strings.TrimSuffix(claims(nil), "}")+`,"aud":["evil.example"]}`, secret)),
		tok("duplicate exp keys, an expired one last", jws(hs256, strings.TrimSuffix(claims(nil), "}")+fmt.Sprintf(`,"exp":%d}`, now.Add(-time.Hour).Unix()), secret)),
		tok("aud as a number", jws(hs256, claims(map[string]any{"aud": 12345}), secret)),
		tok("aud as an object", jws(hs256, claims(map[string]any{"aud": map[string]string{"host": appHost}}), secret)),
		tok("aud empty", jws(hs256, claims(map[string]any{"aud": []string{}}), secret)),
		tok("aud a wildcard", jws(hs256, claims(map[string]any{"aud": "*"}), secret)),
		tok("aud a suffix of the host", jws(hs256, claims(map[string]any{"aud": "corp.example"}), secret)),
		// A quoted number ("exp":"1795...") is read as a NumericDate by
		// golang-jwt; only the secret's holder can sign one, so it is not
		// listed here as hostile.
		tok("exp as a word", jws(hs256, claims(map[string]any{"exp": "tomorrow"}), secret)),
		tok("exp as an object", jws(hs256, claims(map[string]any{"exp": map[string]int64{"$gt": 0}}), secret)),
		tok("exp missing", jws(hs256, claims(map[string]any{"exp": nil}), secret)),
		tok("exp in the past", jws(hs256, claims(map[string]any{"exp": now.Add(-2 * time.Minute).Unix()}), secret)),
		tok("exp far beyond max_service_account_lifetime", jws(hs256, claims(map[string]any{"exp": now.Add(24 * 365 * time.Hour).Unix()}), secret)),
		tok("exp 1e300", jws(hs256, claims(map[string]any{"exp": 1e300}), secret)),
		tok("exp negative", jws(hs256, claims(map[string]any{"exp": -1}), secret)),
		tok("iat missing under max_service_account_lifetime", jws(hs256, claims(map[string]any{"iat": nil}), secret)),
		tok("iat in the future", jws(hs256, claims(map[string]any{"iat": now.Add(time.Hour).Unix()}), secret)),
		tok("nbf in the future", jws(hs256, claims(map[string]any{"nbf": now.Add(time.Hour).Unix()}), secret)),
		tok("iss of another issuer", jws(hs256, claims(map[string]any{"iss": "evil.example"}), secret)),
		tok("iss missing", jws(hs256, claims(map[string]any{"iss": nil}), secret)),
		tok("a revoked jti", jws(hs256, claims(map[string]any{"jti": "revoked-jti"}), secret)),
		tok("a revoked sid under a fresh jti", jws(hs256, claims(map[string]any{"sid": "revoked-jti", "jti": "fresh-jti"}), secret)),
		tok("sid as a number", jws(hs256, claims(map[string]any{"sid": 7}), secret)),
		tok("groups as a string", jws(hs256, claims(map[string]any{"groups": "engineering"}), secret)),
		tok("email as an array", jws(hs256, claims(map[string]any{"email": []string{"alice@corp.example"}}), secret)),
	}
}

// identityCases: tokens that verify, but ask for more than they may.
func identityCases() []checkCase {
	signed := func(over map[string]any) string { return jws(hs256, claims(over), secret) }
	cases := []checkCase{
		{"identity: a non-administrator impersonating the administrator", req{host: adminHost, headers: pomerium(signed(map[string]any{
			"impersonate_email": "alice@corp.example"}))}, 403},
		{"identity: a non-administrator impersonating a group", req{host: appHost, headers: pomerium(signed(map[string]any{
			"groups": []string{"sales"}, "impersonate_groups": []string{"engineering"}}))}, 403},
		{"identity: an administrator impersonating a protected user", req{host: appHost, headers: pomerium(signed(map[string]any{
			"email": "alice@corp.example", "impersonate_email": "security@corp.example", "impersonate_groups": []string{"engineering"}}))}, 403},
		{"identity: an administrator impersonating a protected group in another case", req{host: appHost, headers: pomerium(signed(map[string]any{
			"email": "alice@corp.example", "impersonate_email": "bob@corp.example", "impersonate_groups": []string{"engineering", "Security-Team"}}))}, 403},
		{"identity: a read-only impersonation writing", req{host: appHost, method: "DELETE", headers: pomerium(signed(map[string]any{
			"email": "alice@corp.example", "impersonate_email": "bob@corp.example", "impersonate_groups": []string{"engineering"},
			"impersonate_access": "read_only"}))}, 403},
		{"identity: an unknown impersonate_access", req{host: appHost, headers: pomerium(signed(map[string]any{
			"email": "alice@corp.example", "impersonate_email": "bob@corp.example", "impersonate_groups": []string{"engineering"},
			"impersonate_access": "root"}))}, 403},
		{"identity: an administrator impersonating someone keeps none of their own rights", req{host: adminHost, headers: pomerium(signed(map[string]any{
			"email": "alice@corp.example", "impersonate_email": "bob@corp.example"}))}, 403},
		{"identity: a homoglyph of the administrator's email (Cyrillic a)", req{host: adminHost, headers: pomerium(signed(map[string]any{
			"email": "\u0430lice@corp.example"}))}, 403},
		{"identity: the administrator's email with a NUL", req{host: adminHost, headers: pomerium(signed(map[string]any{
			"email": "alice@corp.example\x00"}))}, 403},
		{"identity: the administrator's email as a suffix", req{host: adminHost, headers: pomerium(signed(map[string]any{
			"email": "mallory+alice@corp.example"}))}, 403},
		{"identity: a group in another case", req{host: appHost, headers: pomerium(signed(map[string]any{
			"groups": []string{"Engineering"}}))}, 403},
		{"identity: a group with a NUL", req{host: appHost, headers: pomerium(signed(map[string]any{
			"groups": []string{"engineering\x00"}}))}, 403},
		{"identity: a token for app presented on admin", req{host: adminHost, headers: pomerium(signed(map[string]any{
			"email": "alice@corp.example", "aud": []string{appHost}}))}, 401},
	}
	for _, catalogue := range []map[string]string{testkit.LookAlikeAddresses, testkit.MalformedAddresses} {
		for what, target := range catalogue {
			cases = append(cases, checkCase{"identity: an impersonation target with " + what + " (not a plain address)",
				req{host: appHost, headers: pomerium(signed(map[string]any{"email": "alice@corp.example",
					"impersonate_email": target, "impersonate_groups": []string{"engineering"}}))}, 403})
		}
	}
	return cases
}

// headerCases: the carriers themselves, as Envoy passes them (lower-case
// names, repeated headers joined with commas, cookies joined with "; ").
func headerCases() []checkCase {
	v := valid()
	cookies := func(n int, last string) string {
		parts := make([]string, 0, n+1)
		for i := range n {
			parts = append(parts, fmt.Sprintf("c%d=v%d", i, i))
		}
		if last != "" {
			parts = append(parts, last)
		}
		return strings.Join(parts, "; ")
	}
	many := map[string]string{}
	for i := range 1000 {
		many[fmt.Sprintf("x-junk-%d", i)] = strings.Repeat("j", 100)
	}
	browser := func(h map[string]string) map[string]string {
		h["accept"] = "text/html"
		return h
	}
	return []checkCase{
		{"header: a 64 KiB Authorization value", app(map[string]string{"authorization": "Pomerium " + strings.Repeat("x", 64<<10)}), 401},
		{"header: two Authorization headers joined by Envoy", app(map[string]string{"authorization": "Pomerium " + v + ", Pomerium " + v}), 401},
		{"header: a valid token joined after a bad one", app(map[string]string{"authorization": "Pomerium garbage, Pomerium " + v}), 401},
		{"header: Bearer without Pomerium-", app(map[string]string{"authorization": "Bearer " + v}), 401},
		{"header: Pomerium with no token", app(map[string]string{"authorization": "Pomerium"}), 401},
		{"header: Pomerium and spaces only", app(map[string]string{"authorization": "Pomerium    "}), 401},
		{"header: Bearer Pomerium- with no token", app(map[string]string{"authorization": "Bearer Pomerium-"}), 401},
		{"header: an odd-case scheme with garbage", app(map[string]string{"authorization": "pOmErIuM garbage"}), 401},
		{"header: an odd-case Bearer pOMERIUM- with garbage", app(map[string]string{"authorization": "bEaReR pOMERIUM-garbage"}), 401},
		{"header: a tab instead of the space", app(map[string]string{"authorization": "Pomerium\t" + v}), 401},
		{"header: a NUL before the token", app(map[string]string{"authorization": "Pomerium \x00" + v}), 401},
		{"header: a NUL inside the scheme", app(map[string]string{"authorization": "Pome\x00rium " + v}), 401},
		{"header: Basic credentials", app(map[string]string{"authorization": "Basic Ym9iOnBhc3N3b3Jk"}), 401},
		{"header: X-Pomerium-Authorization with garbage", app(map[string]string{"x-pomerium-authorization": "garbage"}), 401},
		{"header: X-Pomerium-Authorization of 64 KiB", app(map[string]string{"x-pomerium-authorization": strings.Repeat("a.", 32<<10)}), 401},
		{"header: the underscore spelling x_pomerium_authorization is not a carrier", app(map[string]string{"x_pomerium_authorization": v}), 401},
		{"header: a forged assertion without a token", app(map[string]string{"x-pomerium-jwt-assertion": v, "x-pomerium-claim-email": "alice@corp.example"}), 401},
		{"header: 500 cookies without a session", app(map[string]string{"cookie": cookies(500, "")}), 401},
		{"header: 500 cookies and a bad session last", app(map[string]string{"cookie": cookies(500, "_pomerium=garbage")}), 401},
		{"header: 500 cookies and a bad session, browser", app(browser(map[string]string{"cookie": cookies(500, "_pomerium=garbage")})), 302},
		{"header: cookie _POMERIUM (case differs)", app(map[string]string{"cookie": "_POMERIUM=" + v}), 401},
		{"header: cookie _pomerium2", app(map[string]string{"cookie": "_pomerium2=" + v}), 401},
		{"header: cookie __pomerium", app(map[string]string{"cookie": "__pomerium=" + v}), 401},
		{"header: cookie pomerium", app(map[string]string{"cookie": "pomerium=" + v}), 401},
		{`header: cookie "_pomerium " with a space before =`, app(map[string]string{"cookie": "_pomerium =" + v}), 401},
		{"header: cookie _pomerium%00", app(map[string]string{"cookie": "_pomerium\x00=" + v}), 401},
		{"header: an empty session cookie", app(map[string]string{"cookie": "_pomerium="}), 401},
		{"header: an empty session cookie, browser", app(browser(map[string]string{"cookie": "_pomerium="})), 302},
		{"header: a quoted garbage session cookie", app(map[string]string{"cookie": `_pomerium="garbage"`}), 401},
		{"header: 1000 junk headers", app(many), 401},
		{"header: a 64 KiB Accept", app(map[string]string{"accept": strings.Repeat("text/html;q=0.1, ", 4<<10)}), 302},
		{"header: a request id with markup", app(map[string]string{"x-request-id": "<script>alert(1)</script>"}), 401},
	}
}

// requestCases: the attributes Envoy fills in, and what a broken client or
// proxy might put there.
func requestCases() []checkCase {
	v := valid()
	return []checkCase{
		{"request: no attributes at all", req{raw: &authv3.CheckRequest{}}, 400},
		{"request: no HTTP attributes", req{raw: &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}}}, 400},
		{"request: an empty host", req{host: "", headers: pomerium(v)}, 400},
		{"request: a host that only ends like the route's", req{host: "app.corp.example.evil.example", headers: pomerium(v)}, 404},
		{"request: a host that only starts like the route's", req{host: "evil-app.corp.example", headers: pomerium(v)}, 404},
		{"request: a host with CRLF", req{host: "app.corp.example\r\nx-injected: 1", headers: pomerium(v)}, 404},
		{"request: an unknown route in the context extension", req{host: appHost, route: "nonexistent", headers: pomerium(v)}, 404},
		{"request: path traversal to another route's path, no token", req{host: appHost, path: "/../../admin", headers: nil}, 401},
		{"request: a path with CRLF, browser", req{host: appHost, path: "/\r\nLocation: https://evil.example", headers: map[string]string{"accept": "text/html"}}, 302},
		{"request: an upper-case host without a token", req{host: "APP.CORP.EXAMPLE:443", headers: nil}, 401},
		{"request: a CONNECT without a token", req{host: appHost, method: "CONNECT", headers: nil}, 401},
		{"request: a 1 MiB path without a token", req{host: appHost, path: "/" + strings.Repeat("a", 1<<20), headers: nil}, 401},
	}
}

// rawReq is a request as Envoy sends it with encode_raw_headers: every header
// line in header_map, values as raw bytes, headers empty.
func rawReq(host string, lines ...[2]string) req {
	r := req{host: host}.build()
	h := r.Attributes.Request.Http
	hm := &corev3.HeaderMap{}
	for _, k := range []string{":authority", ":path", ":method", ":scheme", "x-request-id", "accept", "user-agent"} {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(h.Headers[k])})
	}
	for _, l := range lines {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: l[0], RawValue: []byte(l[1])})
	}
	h.Headers, h.HeaderMap = nil, hm
	return req{raw: r}
}

// rawHeaderCases: header_map, as Envoy sends it with encode_raw_headers.
func rawHeaderCases() []checkCase {
	v := valid()
	carol := jws(hs256, claims(map[string]any{"email": "carol@corp.example", "groups": []string{"engineering"}}), secret)
	many := make([][2]string, 0, 2000)
	for i := range 2000 {
		many = append(many, [2]string{"x-junk", fmt.Sprintf("line %d", i)})
	}
	manyCookies := make([][2]string, 0, 300)
	for i := range 300 {
		manyCookies = append(manyCookies, [2]string{"cookie", fmt.Sprintf("c%d=v", i)})
	}
	raw := func(name string, want int, lines ...[2]string) checkCase {
		return checkCase{"raw header_map: " + name, rawReq(appHost, lines...), want}
	}
	return []checkCase{
		raw("no carrier at all", 401),
		raw("a forged token in Authorization", 401, [2]string{"authorization", "Pomerium " + v[:len(v)-2] + "AA"}),
		raw("a token with a non-UTF-8 byte appended", 401, [2]string{"authorization", "Pomerium " + v + "\xff"}),
		raw("a non-UTF-8 scheme", 401, [2]string{"authorization", "Pom\xe9rium " + v}),
		raw("a valid token on a second Authorization line after garbage", 401,
			[2]string{"authorization", "Pomerium garbage"}, [2]string{"authorization", "Pomerium " + v}),
		raw("two valid session cookies of different people on two lines", 401,
			[2]string{"cookie", "_pomerium=" + v}, [2]string{"cookie", "_pomerium=" + carol}),
		raw("nine session cookies", 401, func() [][2]string {
			var out [][2]string
			for range 9 {
				out = append(out, [2]string{"cookie", "_pomerium=" + v})
			}
			return out
		}()...),
		raw("2000 junk lines", 401, many...),
		raw("300 cookie lines without a session", 401, manyCookies...),
		raw("a forged assertion and claim headers without a token", 401,
			[2]string{"x-pomerium-jwt-assertion", v}, [2]string{"x_pomerium_claim_email", "alice@corp.example"}, [2]string{"x-email", "alice@corp.example"}),
		raw("the underscore spelling x_pomerium_authorization is not a carrier", 401, [2]string{"x_pomerium_authorization", v}),
		raw("an upper-case AUTHORIZATION key is read like Envoy's lower-case one", 403,
			[2]string{"AUTHORIZATION", "Pomerium " + jws(hs256, claims(map[string]any{"groups": []string{"sales"}}), secret)}),
		{"raw header_map: a request id with markup", func() req {
			r := rawReq(appHost)
			r.raw.Attributes.Request.Http.HeaderMap.Headers[4].RawValue = []byte("<script>alert(1)</script>")
			return r
		}(), 401},
	}
}

func allCheckCases() []checkCase {
	var all []checkCase
	for _, group := range [][]checkCase{tokenCases(), identityCases(), headerCases(), requestCases(), rawHeaderCases()} {
		all = append(all, group...)
	}
	return all
}

func TestHostileCheckRequests(t *testing.T) {
	s := newServer(t)
	cases := allCheckCases()
	if len(cases) < 60 {
		t.Fatalf("only %d Check cases; the catalogue promises at least 60", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cr := c.req.build()
			resp, err := s.client.Check(ctx, cr)
			if err != nil {
				t.Fatalf("Check failed: %v", err)
			}
			if resp.GetOkResponse() != nil || resp.GetStatus().GetCode() == 0 {
				t.Fatalf("ALLOWED: %v", resp.GetOkResponse())
			}
			d := resp.GetDeniedResponse()
			if got := int(d.GetStatus().GetCode()); got != c.want {
				t.Errorf("status %d (%s), want %d", got, resp.GetStatus().GetMessage(), c.want)
			}
			for _, h := range d.GetHeaders() {
				if strings.ContainsAny(h.GetHeader().GetValue(), "\r\n\x00") {
					t.Errorf("answer header %s carries CR, LF or NUL: %q", h.GetHeader().GetKey(), h.GetHeader().GetValue())
				}
			}
			body := d.GetBody()
			if strings.Contains(body, "<script>") {
				t.Errorf("the body reflects markup: %q", body)
			}
			if strings.Contains(body, secret) {
				t.Error("the body contains the secret")
			}
			for _, hv := range cr.GetAttributes().GetRequest().GetHttp().GetHeaders() {
				if len(hv) >= 40 && strings.Contains(body, hv) {
					t.Errorf("the body echoes a request header value")
				}
			}
		})
	}
	// Sanity: the server still answers, and allows what it should.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := s.client.Check(ctx, app(pomerium(valid())).build())
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("after the catalogue a valid token is not allowed: %v %v", resp, err)
	}
	allows := 0.0
	mfs, _ := s.metrics.Registry().Gather()
	for _, mf := range mfs {
		if mf.GetName() != "extauthz_checks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "decision" && l.GetValue() == "allow" {
					allows += m.GetCounter().GetValue()
				}
			}
		}
	}
	if allows != 1 {
		t.Errorf("extauthz_checks_total{decision=allow} = %v, want 1 (the sanity check only)", allows)
	}
}

// TestHostileIdentityHeadersNeverReachUpstream: allowed requests carrying
// forged identity headers, in every spelling an upstream might read as ours,
// on every kind of route, sent as headers and as header_map. The sidecar must
// remove each one or overwrite it from the token (contract section 8).
func TestHostileIdentityHeadersNeverReachUpstream(t *testing.T) {
	s := newServer(t)
	bob := jws(hs256, claims(map[string]any{"aud": []string{appHost, quietHost, publicHost}}), secret)
	forged := []string{
		"x-pomerium-jwt-assertion", "x_pomerium_jwt_assertion", "x-pomerium_jwt_assertion", "x_pomerium-jwt-assertion",
		"X-POMERIUM-JWT-ASSERTION", "x-pomerium-claim-email", "x_pomerium-claim-email", "x-pomerium-claim_email",
		"x-pomerium-claim-groups", "X_Pomerium_Claim_Groups", "x-pomerium-claim-name", "x-pomerium-anything",
		"x-email", "x_email", "X-EMAIL", "x-name", "x_name", "x-pomerium-",
	}
	routes := []struct {
		name, host string
		token      bool
		ours       map[string]string // headers the sidecar sets from bob's token
	}{
		{"a route passing identity", appHost, true, map[string]string{"x-email": "bob@corp.example", "x-pomerium-claim-groups": "engineering"}},
		{"a pass_identity_headers: false route", quietHost, true, nil},
		{"a public route", publicHost, false, nil},
	}
	for _, r := range routes {
		for _, asRaw := range []bool{false, true} {
			how := "headers"
			if asRaw {
				how = "header_map"
			}
			t.Run("on "+r.name+" via "+how+" no forged identity header survives", func(t *testing.T) {
				var cr *authv3.CheckRequest
				sent := map[string]string{}
				for _, h := range forged {
					sent[h] = "forged"
				}
				if r.token {
					sent["authorization"] = "Pomerium " + bob
				}
				if asRaw {
					var lines [][2]string
					for k, v := range sent {
						lines = append(lines, [2]string{strings.ToLower(k), v})
					}
					cr = rawReq(r.host, lines...).build()
				} else {
					cr = req{host: r.host, headers: sent}.build()
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				resp, err := s.client.Check(ctx, cr)
				if err != nil {
					t.Fatal(err)
				}
				ok := resp.GetOkResponse()
				if ok == nil {
					t.Fatalf("not allowed: %v", resp)
				}
				set := map[string]string{}
				for _, h := range ok.GetHeaders() {
					set[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
				}
				removed := map[string]bool{}
				for _, h := range ok.GetHeadersToRemove() {
					removed[strings.ToLower(h)] = true
				}
				for _, h := range forged {
					k := strings.ToLower(h)
					if v, isSet := set[k]; isSet {
						if v == "forged" || (r.ours[k] != "" && v != r.ours[k]) {
							t.Errorf("%s = %q upstream", h, v)
						}
						continue
					}
					if !removed[k] {
						t.Errorf("forged %s reaches the upstream", h)
					}
				}
				for k, want := range r.ours {
					if set[k] != want {
						t.Errorf("%s = %q, want %q from the token", k, set[k], want)
					}
				}
			})
		}
	}
}
