package check

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/impersonation"
	"github.com/extauthz/extauthz/internal/policy"
	"github.com/extauthz/extauthz/internal/testkit"
)

const fuzzSecret = "ZnV6eiB0aGUgQ2hlY2sgcmVxdWVzdCBtYXBwaW5nIHNlY3JldA==" // 36 bytes decoded

var fuzzNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func fuzzServer(tb testing.TB) (*Server, *identity.Verifier) {
	tb.Helper()
	pol, err := policy.Compile([]policy.RouteSpec{
		{Name: "public", From: "https://public.example.com", AllowPublicUnauthenticatedAccess: true},
		{Name: "api", From: "https://app.example.com", Prefix: "/api/", AllowedUsers: []string{"carol@corp.example"}},
		{Name: "app", From: "https://app.example.com", AllowedGroups: []string{"engineering"},
			SetRequestHeaders: map[string]string{"X-Team": "core"}, RemoveRequestHeaders: []string{"x-internal"}},
		{Name: "wiki", From: "https://*.wiki.example.com", Regex: "^/(pages|search)(/.*)?$", AllowAnyAuthenticatedUser: true},
		{Name: "admin", From: "https://admin.example.com", AllowedUsers: []string{"alice@corp.example"}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	v, err := identity.NewVerifier(identity.VerifierOptions{Secrets: []string{fuzzSecret}, Issuer: "authenticate.example.com",
		Leeway: time.Minute, RevokedIDs: []string{"revoked-1"}, MaxLifetime: 48 * time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	key, err := identity.GenerateSigningKey()
	if err != nil {
		tb.Fatal(err)
	}
	snap := &Snapshot{
		Engine: &decision.Engine{Policy: pol, Verifier: v, CookieName: "_pomerium",
			Rules: impersonation.NewRules([]string{"alice@corp.example"}, []string{"security@corp.example"}, identity.AccessReadOnly, time.Minute)},
		Key:          key,
		Issuer:       "authenticate.example.com",
		ClaimHeaders: []ClaimHeader{{Claim: "email", Header: "x-pomerium-claim-email"}, {Claim: "groups", Header: "x-pomerium-claim-groups"}},
		Assertions:   NewAssertionCache(1000),
	}
	s := New(snap, zap.NewNop())
	s.SetClock(func() time.Time { return fuzzNow })
	return s, v
}

func fuzzToken(tb testing.TB, c identity.Claims) string {
	tb.Helper()
	return testkit.Mint(tb, fuzzSecret, testkit.Fill(c, "authenticate.example.com", fuzzNow,
		"app.example.com", "admin.example.com", "public.example.com", "docs.wiki.example.com"))
}

// FuzzCheckRequest feeds arbitrary request attributes (host, path, method,
// the token carriers, one extra header, Envoy's route name) through the
// server's Check, in process. It asserts that nothing panics or errors, that
// every answer is a well-formed allow or denial, that a non-public route is
// never allowed without a token that verifies on its own for that host, that
// no client-sent x-pomerium-* header survives an allow, and that no header
// of the answer carries CR, LF or NUL.
func FuzzCheckRequest(f *testing.F) {
	bob := fuzzToken(f, identity.Claims{Email: "bob@corp.example", User: "bob", Groups: []string{"engineering"}})
	alice := fuzzToken(f, identity.Claims{Email: "alice@corp.example", User: "alice", Groups: []string{"admins"}})
	aliceAsBob := fuzzToken(f, identity.Claims{Email: "alice@corp.example", ImpersonateEmail: "bob@corp.example",
		ImpersonateGroups: []string{"engineering"}, ImpersonateAccess: identity.AccessReadOnly})
	bobAsAlice := fuzzToken(f, identity.Claims{Email: "bob@corp.example", ImpersonateEmail: "alice@corp.example"})
	revoked := fuzzToken(f, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"},
		RegisteredClaims: jwt.RegisteredClaims{ID: "revoked-1"}})
	expired := fuzzToken(f, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"},
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(fuzzNow.Add(-time.Hour))}})

	type seed struct{ host, path, method, auth, xauth, cookie, accept, name, value, route string }
	seeds := []seed{
		{"app.example.com", "/", "GET", "Pomerium " + bob, "", "", "", "", "", ""},
		{"APP.example.com:443", "/reports?q=1", "POST", "Bearer Pomerium-" + bob, "", "", "application/json", "x-pomerium-jwt-assertion", "forged", ""},
		{"app.example.com", "/", "GET", "", bob, "", "text/html", "x_pomerium_claim_email", "admin@corp.example", ""},
		{"app.example.com", "/", "GET", "", "", "a=b; _pomerium=" + bob + "; c=d", "text/html", "cookie2", "x", ""},
		{"admin.example.com", "/", "GET", "Pomerium " + alice, "", "", "", "", "", ""},
		{"app.example.com", "/", "GET", "Pomerium " + aliceAsBob, "", "", "", "", "", ""},
		{"app.example.com", "/", "DELETE", "Pomerium " + aliceAsBob, "", "", "", "", "", ""},
		{"admin.example.com", "/", "GET", "Pomerium " + bobAsAlice, "", "", "", "", "", ""},
		{"app.example.com", "/", "GET", "Pomerium " + revoked, "", "", "", "", "", ""},
		{"app.example.com", "/", "GET", "Pomerium " + expired, "", "", "text/html", "", "", ""},
		{"public.example.com", "/anything", "GET", "Pomerium garbage", "", "", "", "x-pomerium-authorization", "x", ""},
		{"docs.wiki.example.com", "/pages/x", "GET", "Pomerium " + bob, "", "", "", "", "", ""},
		{"docs.wiki.example.com", "/../admin", "GET", "Pomerium " + bob, "", "", "", "", "", ""},
		{"app.example.com", "/api/x", "GET", "Pomerium " + bob, "", "", "", "", "", "admin"},
		{"app.example.com", "/", "GET", "Pomerium " + bob, "", "", "", "", "", "nonexistent"},
		{"", "", "", "", "", "", "", "", "", ""},
		{"[::1]:8080", "//%2e%2e/", "CONNECT", "Pomerium\x00" + bob, "", "", "", "", "", ""},
		{"app.example.com\r\nx: y", "/\r\nLocation: evil", "GET", "", "", "", "text/html", "", "", ""},
		{"app.example.com", "/", "GET", "Pomerium " + bob + ", Pomerium " + alice, "", "", "", "", "", ""},
		{"app.example.com", "/", "GET", "Basic dXNlcjpwYXNz", "", "_pomerium=", "", "", "", ""},
		{"évil.example.com", "/ü", "GËT", "pOmErIuM " + bob, "", "", "", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.host, s.path, s.method, s.auth, s.xauth, s.cookie, s.accept, s.name, s.value, s.route)
	}

	srv, verifier := fuzzServer(f)
	var got decision.Decision
	srv.Observe = func(d *decision.Decision, _ time.Duration) { got = *d }

	f.Fuzz(func(t *testing.T, host, path, method, auth, xauth, cookie, accept, name, value, route string) {
		headers := map[string]string{":authority": host, ":path": path, ":method": method, ":scheme": "https"}
		set := func(k, v string) {
			if v != "" {
				headers[k] = v
			}
		}
		set("authorization", auth)
		set("x-pomerium-authorization", xauth)
		set("cookie", cookie)
		set("accept", accept)
		if name != "" {
			headers[strings.ToLower(name)] = value
		}
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Id: "1", Method: method, Host: host, Path: path, Scheme: "https",
				Protocol: "HTTP/1.1", Headers: headers}}}}
		if route != "" {
			req.Attributes.ContextExtensions = map[string]string{"route": route}
		}
		got = decision.Decision{Status: -1}
		resp, err := srv.Check(context.Background(), req)
		if err != nil || resp == nil {
			t.Fatalf("Check returned %v, %v", resp, err)
		}
		if got.Status == -1 {
			t.Fatal("Observe was not called")
		}
		for _, h := range append(resp.GetOkResponse().GetHeaders(), resp.GetDeniedResponse().GetHeaders()...) {
			k, v := h.GetHeader().GetKey(), h.GetHeader().GetValue()
			if strings.ContainsAny(k, "\r\n\x00") || strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("answer header %q: %q carries CR, LF or NUL", k, v)
			}
		}
		ok := resp.GetOkResponse()
		if ok == nil {
			denied := resp.GetDeniedResponse()
			if denied == nil || resp.GetStatus().GetCode() == int32(codes.OK) {
				t.Fatalf("neither a clean allow nor a denial: %v", resp)
			}
			switch st := denied.GetStatus().GetCode(); st {
			case 302, 400, 401, 403, 404, 500:
			default:
				t.Fatalf("denial with status %d", st)
			}
			if tok, _ := identity.ExtractToken(func(n string) string { return headers[n] }, "_pomerium"); len(tok) >= 16 &&
				(strings.Contains(denied.GetBody(), tok) || strings.Contains(resp.GetStatus().GetMessage(), tok)) {
				t.Fatal("the denial echoes the token")
			}
			return
		}
		if resp.GetStatus().GetCode() != int32(codes.OK) || resp.GetDeniedResponse() != nil || !got.Allowed() {
			t.Fatalf("an allow with status %v, decision %d", resp.GetStatus(), got.Status)
		}
		if got.Route == nil {
			t.Fatal("an allow without a route")
		}
		if !got.Route.Public {
			tok, src := identity.ExtractToken(func(n string) string { return headers[n] }, "_pomerium")
			if src == identity.SourceNone {
				t.Fatalf("route %s allowed without a token", got.Route.Name)
			}
			var err error
			if src == identity.SourceCookie {
				_, _, err = verifier.VerifyCookies(headers["cookie"], "_pomerium", host, fuzzNow)
			} else {
				_, err = verifier.Verify(tok, host, fuzzNow)
			}
			if err != nil {
				t.Fatalf("route %s allowed on a token that does not verify: %v", got.Route.Name, err)
			}
		}
		setOrRemoved := map[string]bool{}
		for _, h := range ok.GetHeaders() {
			setOrRemoved[h.GetHeader().GetKey()] = true
		}
		for _, h := range ok.GetHeadersToRemove() {
			setOrRemoved[h] = true
		}
		for k := range headers {
			if (isPomeriumHeader(k) || srv.Snapshot().isClaimHeader(k)) && !setOrRemoved[k] {
				t.Fatalf("client header %q survives the allow", k)
			}
		}
	})
}

// FuzzRawHeaders feeds arbitrary header lines through Check twice: once as
// Envoy sends them with encode_raw_headers (header_map, one entry per line,
// raw bytes) and once joined into headers as requestHeaders reads them. The
// two must get the same answer, nothing may panic, every answer must be
// valid protobuf (UTF-8 strings), and no x-pomerium-* line survives an allow.
func FuzzRawHeaders(f *testing.F) {
	bob := fuzzToken(f, identity.Claims{Email: "bob@corp.example", User: "bob", Groups: []string{"engineering"}})
	carol := fuzzToken(f, identity.Claims{Email: "carol@corp.example", Groups: []string{"engineering"}})
	seeds := [][]string{
		{"authorization", "Pomerium " + bob},
		{"cookie", "a=1", "cookie", "_pomerium=" + bob, "x-pomerium-claim-email", "ceo@corp.example"},
		{"cookie", "_pomerium=" + bob, "cookie", "_pomerium=" + carol},
		{"cookie", "_pomerium=garbage", "cookie", "_pomerium=" + bob + "; legacy=caf\xe9"},
		{"x_pomerium-claim-email", "x", "X-Pomerium_Jwt_Assertion", "y", "authorization", "Bearer Pomerium-" + bob},
		{"authorization", "Pomerium garbage", "authorization", "Pomerium " + bob},
		{"accept", "text/html", "cookie", "_pomerium="},
	}
	for _, s := range seeds {
		f.Add("app.example.com", strings.Join(s, "\n"))
	}
	srv, _ := fuzzServer(f)
	f.Fuzz(func(t *testing.T, host, lines string) {
		parts := strings.Split(lines, "\n")
		if len(parts) > 64 {
			parts = parts[:64]
		}
		hm := &corev3.HeaderMap{}
		for i := 0; i+1 < len(parts); i += 2 {
			k := strings.ToLower(parts[i])
			if k == "" || !utf8.ValidString(k) {
				continue // header names reach us as proto strings: UTF-8
			}
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(parts[i+1])})
		}
		base := func() *authv3.CheckRequest {
			return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
				Http: &authv3.AttributeContext_HttpRequest{Id: "1", Method: "GET", Host: host, Path: "/", Scheme: "https", Protocol: "HTTP/1.1"}}}}
		}
		raw := base()
		raw.Attributes.Request.Http.HeaderMap = hm
		joined := base()
		joined.Attributes.Request.Http.Headers, _ = headerMap(requestHeaders(raw.Attributes.Request.Http))
		for k, v := range joined.Attributes.Request.Http.Headers {
			if !utf8.ValidString(v) {
				// headers is a map of proto strings: Envoy would have
				// sanitized it; compare on what Envoy can send.
				joined.Attributes.Request.Http.Headers[k] = utf8Value(v)
			}
		}
		rawResp, err := srv.Check(context.Background(), raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := proto.Marshal(rawResp); err != nil {
			t.Fatalf("the answer to header_map does not marshal: %v", err)
		}
		joinedResp, err := srv.Check(context.Background(), joined)
		if err != nil {
			t.Fatal(err)
		}
		if (rawResp.GetOkResponse() == nil) != (joinedResp.GetOkResponse() == nil) ||
			rawResp.GetDeniedResponse().GetStatus().GetCode() != joinedResp.GetDeniedResponse().GetStatus().GetCode() {
			t.Fatalf("header_map and headers disagree: %v vs %v", rawResp, joinedResp)
		}
		ok := rawResp.GetOkResponse()
		if ok == nil {
			return
		}
		handled := map[string]bool{}
		for _, h := range ok.GetHeaders() {
			handled[h.GetHeader().GetKey()] = true
		}
		for _, h := range ok.GetHeadersToRemove() {
			handled[h] = true
		}
		for _, h := range hm.Headers {
			if isPomeriumHeader(h.Key) && !handled[h.Key] {
				t.Fatalf("client header %q survives the allow", h.Key)
			}
		}
	})
}
