package main

// oauth2-proxy in its main mode for browsers (issue 19): a user signs in
// once through an OpenID provider, oauth2-proxy keeps the session in a
// cookie it issued (its default cookie session store: the tokens and the
// identity, encrypted and signed with its cookie secret), and every request
// after that presents only the cookie. Beside the bearer-JWT configuration,
// this is the fairer peer for our session tokens: both are a session the
// authorizer issued, checked with a symmetric key.

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"github.com/extauthz/extauthz/internal/oidctest"
)

// maxCookieSessions is how many users sign in to oauth2-proxy's cookie mode.
const maxCookieSessions = 100

// oauth2ProxyCookieName is oauth2-proxy's default session cookie name.
const oauth2ProxyCookieName = "_oauth2_proxy"

// oauth2ProxyCookieExtAuthz is oauth2ProxyExtAuthz with the Cookie header
// passed to oauth2-proxy: Envoy's HTTP ext_authz sends only Host, Method,
// Path, Content-Length and Authorization unless told.
var oauth2ProxyCookieExtAuthz = strings.Replace(oauth2ProxyExtAuthz, "  path_prefix: /oauth2/auth\n",
	"  path_prefix: /oauth2/auth\n  authorization_request:\n    allowed_headers:\n      patterns:\n        - { exact: cookie, ignore_case: true }\n", 1)

// cookieUser is user i of the provider oauth2-proxy's cookie mode signs in with.
func cookieUser(i int) oidctest.User {
	return oidctest.User{ID: fmt.Sprintf("u%06d", i), Name: fmt.Sprintf("user%06d", i), Email: userEmail(i)}
}

// startOAuth2ProxyCookie runs oauth2-proxy as an OIDC client of an in-runner
// provider (internal/oidctest) with cookie sessions, signs n users in through
// the real authorization-code flow, and returns the Cookie header of each
// session. The provider is used only to sign in; oauth2-proxy reads its
// cookies alone afterwards (no refresh within the ID tokens' hour).
func startOAuth2ProxyCookie(bin string, n int) (p *proc, addr string, cookies []string, closeProvider func(), err error) {
	if addr, err = freeAddr(); err != nil {
		return nil, "", nil, nil, err
	}
	users := make([]oidctest.User, n)
	for i := range users {
		users[i] = cookieUser(i)
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, "", nil, nil, err
	}
	callback := "http://" + addr + "/oauth2/callback"
	prov, err := oidctest.New(oidctest.Options{ClientID: "bench-cookie", ClientSecret: fmt.Sprintf("%x", secret),
		RedirectURIs: []string{callback}, Users: users})
	if err != nil {
		return nil, "", nil, nil, err
	}
	cookieSecret := make([]byte, 16)
	if _, err := rand.Read(cookieSecret); err != nil {
		prov.Close()
		return nil, "", nil, nil, err
	}
	p, err = startProc("oauth2-proxy (cookie sessions)", bin,
		"--http-address="+addr,
		"--provider=oidc",
		"--oidc-issuer-url="+prov.Issuer,
		"--client-id=bench-cookie",
		"--client-secret="+fmt.Sprintf("%x", secret),
		"--redirect-url="+callback,
		"--code-challenge-method=S256",
		"--cookie-secret="+fmt.Sprintf("%x", cookieSecret),
		"--cookie-secure=false",
		"--email-domain=*",
		"--upstream=static://200",
		"--api-route=^/oauth2/auth/",
		"--set-xauthrequest=true",
		"--skip-provider-button=true",
		"--request-logging=false",
		"--standard-logging=false",
		"--auth-logging=false",
	)
	if err != nil {
		prov.Close()
		return nil, "", nil, nil, err
	}
	fail := func(err error) (*proc, string, []string, func(), error) {
		p.Stop()
		prov.Close()
		return nil, "", nil, nil, err
	}
	if err := p.waitReady(20*time.Second, httpReady("http://"+addr+"/ping", 200)); err != nil {
		return fail(err)
	}
	for i := range n {
		c, err := signInOAuth2Proxy(prov, addr, users[i].Name)
		if err != nil {
			return fail(p.failure(fmt.Errorf("signing %s in: %w", users[i].Email, err)))
		}
		cookies = append(cookies, c)
	}
	return p, addr, cookies, prov.Close, nil
}

// signInOAuth2Proxy walks one browser sign-in (start, provider, login,
// callback) and returns the session cookies oauth2-proxy set, as a Cookie
// header.
func signInOAuth2Proxy(prov *oidctest.Provider, addr, username string) (string, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return "", err
	}
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	prov.AutoLogin(username)
	resp, err := client.Get("http://" + addr + "/oauth2/start?rd=%2F")
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("sign-in ended with %s: %q", resp.Status, body)
	}
	u, _ := url.Parse("http://" + addr + "/")
	var parts []string
	for _, c := range jar.Cookies(u) {
		if strings.HasPrefix(c.Name, oauth2ProxyCookieName) && !strings.HasSuffix(c.Name, "_csrf") {
			parts = append(parts, c.Name+"="+c.Value)
		}
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("no %s cookie after sign-in", oauth2ProxyCookieName)
	}
	return strings.Join(parts, "; "), nil
}

// tamper breaks a cookie session's signature (its last character).
func tamper(cookie string) string {
	last := cookie[len(cookie)-1]
	repl := byte('A')
	if last == 'A' {
		repl = 'B'
	}
	return cookie[:len(cookie)-1] + string(repl)
}
