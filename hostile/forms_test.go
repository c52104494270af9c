package hostile_test

import (
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/reload"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/internal/web"
)

// pages serves the /.pomerium pages from configYAML (cookies not Secure, so
// that a test client over plain HTTP sends them back).
type pages struct {
	t    *testing.T
	srv  *httptest.Server
	logs *observer.ObservedLogs
}

func newPages(t *testing.T) *pages {
	t.Helper()
	cfg, err := config.Parse([]byte(withExtra("cookie_secure: false\n")), "hostile.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, settings, err := reload.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	srv := httptest.NewServer(web.New(settings, zap.New(core)))
	t.Cleanup(srv.Close)
	return &pages{t: t, srv: srv, logs: logs}
}

// client is a browser with a cookie jar that reaches the pages under any
// host name and does not follow redirects.
type client struct {
	*testkit.Browser
	p *pages
}

func (p *pages) client(session string) *client {
	addr := p.srv.Listener.Addr().String()
	b := testkit.NewBrowser(func(string, string) string { return addr })
	if session != "" {
		u, _ := url.Parse("http://" + appHost + "/")
		b.Jar.SetCookies(u, []*http.Cookie{{Name: "_pomerium", Value: session, Path: "/"}})
	}
	return &client{Browser: b, p: p}
}

func (c *client) session() string { return c.Cookie("http://"+appHost+"/", "_pomerium") }

func (c *client) do(method, path, body string, header ...string) (*http.Response, string) {
	c.p.t.Helper()
	req, err := http.NewRequest(method, "http://"+appHost+path, strings.NewReader(body))
	if err != nil {
		c.p.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		c.p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var csrfField = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// csrf scrapes the CSRF token from a page's form, as a browser sends it back.
func (c *client) csrf(path string) string {
	c.p.t.Helper()
	_, body := c.do(http.MethodGet, path, "")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		c.p.t.Fatalf("no CSRF field on %s", path)
	}
	return url.QueryEscape(html.UnescapeString(m[1]))
}

func TestHostileImpersonationForms(t *testing.T) {
	p := newPages(t)
	alice := jws(hs256, claims(map[string]any{"email": "alice@corp.example", "user": "alice", "groups": []string{"admins"}}), secret)
	bob := valid()
	const good = "email=bob%40corp.example&reason=ticket+1"
	type formCase struct {
		name    string
		session string
		method  string
		path    string
		csrf    bool   // send the scraped CSRF token first in the body
		body    string // the rest of the body
		header  []string
		want    int
	}
	cases := []formCase{
		{name: "no CSRF token", session: alice, body: good, want: 403},
		{name: "a forged CSRF token", session: alice, body: "_csrf=" + strings.Repeat("A", 88) + "&" + good, want: 403},
		{name: "a CSRF token of the wrong length", session: alice, body: "_csrf=AAAA&" + good, want: 403},
		{name: "a post from another origin", session: alice, csrf: true, body: good, header: []string{"Origin", "https://evil.example"}, want: 403},
		{name: "a non-administrator", session: bob, csrf: true, body: "email=carol%40corp.example&reason=r", want: 403},
		{name: "a protected user", session: alice, csrf: true, body: "email=security%40corp.example&reason=r", want: 403},
		{name: "a protected group in another case", session: alice, csrf: true, body: "email=bob%40corp.example&groups=eng,+Security-Team&reason=r", want: 403},
		{name: "the administrator themselves", session: alice, csrf: true, body: "email=alice%40corp.example&reason=r", want: 403},
		{name: "the administrator in upper case", session: alice, csrf: true, body: "email=ALICE%40CORP.EXAMPLE&reason=r", want: 403},
		{name: "a duplicated email field", session: alice, csrf: true, body: good + "&email=eve%40corp.example", want: 400},
		{name: "a duplicated CSRF field", session: alice, csrf: true, body: "_csrf=x&" + good, want: 400},
		{name: "a NUL in the email", session: alice, csrf: true, body: "email=bob%00%40corp.example&reason=r", want: 400},
		{name: "bytes that are not UTF-8", session: alice, csrf: true, body: "email=%ff%fe%40corp.example&reason=r", want: 400},
		{name: "a malformed percent-encoding", session: alice, csrf: true, body: good + "&groups=%zz", want: 400},
		{name: "a form over 64 KiB", session: alice, csrf: true, body: good + "&groups=" + strings.Repeat("g", 70<<10), want: 400},
		{name: "an unknown access", session: alice, csrf: true, body: good + "&access=root", want: 400},
		{name: "a reason with a bidi override", session: alice, csrf: true, body: "email=bob%40corp.example&reason=a%E2%80%AEb", want: 400},
		{name: "a reason with an escape sequence", session: alice, csrf: true, body: "email=bob%40corp.example&reason=%1b%5b31m", want: 400},
		{name: "no reason", session: alice, csrf: true, body: "email=bob%40corp.example", want: 400},
		{name: "an email that is not one", session: alice, csrf: true, body: "email=bob+at+corp&reason=r", want: 400},
		{name: "an email with markup", session: alice, csrf: true, body: "email=%3Cscript%3E%40x&reason=r", want: 400},
		{name: "a full-width look-alike of the protected user", session: alice, csrf: true, body: "email=" + url.QueryEscape("ｓｅｃｕｒｉｔｙ@corp.example") + "&reason=r", want: 400},
		{name: "an accented look-alike of the protected user", session: alice, csrf: true, body: "email=" + url.QueryEscape("sécurity@corp.example") + "&reason=r", want: 400},
		{name: "a Cyrillic look-alike of the protected user", session: alice, csrf: true, body: "email=" + url.QueryEscape("s\u0435curity@corp.example") + "&reason=r", want: 400},
		{name: "a combining-accent look-alike of the protected user", session: alice, csrf: true, body: "email=" + url.QueryEscape("se\u0301curity@corp.example") + "&reason=r", want: 400},
		{name: "a multipart body", session: alice, body: "--x\r\n", header: []string{"Content-Type", "multipart/form-data; boundary=x"}, want: 415},
		{name: "a JSON body", session: alice, body: `{"email":"bob@corp.example"}`, header: []string{"Content-Type", "application/json"}, want: 415},
		{name: "GET instead of POST", session: alice, method: http.MethodGet, body: "", want: 405},
		{name: "no session, from a script", session: "", csrf: true, body: good, header: []string{"Accept", "application/json"}, want: 401},
		{name: "a forged session, from a script", session: jws(hs256, claims(map[string]any{"email": "alice@corp.example"}), "not the secret, but long enough for hmac"),
			csrf: true, body: good, header: []string{"Accept", "application/json"}, want: 401},
	}
	for _, c := range cases {
		t.Run("form: "+c.name, func(t *testing.T) {
			cl := p.client(c.session)
			body := c.body
			if c.csrf {
				page := "/.pomerium/"
				if c.session == "" || c.session != alice && c.session != bob {
					page = "/.pomerium/sign_in"
				}
				body = "_csrf=" + cl.csrf(page) + "&" + body
			}
			method := c.method
			if method == "" {
				method = http.MethodPost
			}
			before := cl.session()
			resp, text := cl.do(method, "/.pomerium/impersonate", body, c.header...)
			if resp.StatusCode != c.want {
				t.Errorf("status %d, want %d: %.200s", resp.StatusCode, c.want, text)
			}
			if resp.StatusCode == http.StatusSeeOther && resp.Header.Get("Location") == "/.pomerium/" {
				t.Error("ALLOWED: the impersonation started")
			}
			if cl.session() != before {
				t.Error("the session cookie changed")
			}
			if strings.Contains(text, "<script>") {
				t.Error("the page reflects markup")
			}
		})
	}
	if n := p.logs.FilterMessage("impersonation_started").Len(); n != 0 {
		t.Errorf("%d impersonations started", n)
	}
	// Sanity: the same pages do start an impersonation for a proper form.
	cl := p.client(alice)
	resp, text := cl.do(http.MethodPost, "/.pomerium/impersonate", "_csrf="+cl.csrf("/.pomerium/")+"&"+good)
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a proper form: status %d: %.300s", resp.StatusCode, text)
	}
}
