package testkit

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"testing"
	"time"
)

// Browser keeps cookies and does not follow redirects by itself. Dial, when
// set, picks the address to connect to for a request's host and port (""
// keeps it), as /etc/hosts would.
type Browser struct {
	Jar    *cookiejar.Jar
	Client *http.Client
}

// NewBrowser returns a Browser dialling as dial says.
func NewBrowser(dial func(host, port string) string) *Browser {
	jar, _ := cookiejar.New(nil)
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dial != nil {
			host, port, _ := net.SplitHostPort(addr)
			if to := dial(host, port); to != "" {
				addr = to
			}
		}
		return d.DialContext(ctx, network, addr)
	}}
	return &Browser{Jar: jar, Client: &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Browse follows redirects from start like a browser until an answer that
// is not a redirect, or until stop accepts the next URL (not visited); it
// returns the last answer (its body read) and body, and the URLs visited
// after start. logs, when set, is shown if a request fails.
func (b *Browser) Browse(t testing.TB, start string, stop func(*url.URL) bool, logs func() string) (*http.Response, string, []string) {
	t.Helper()
	next := start
	var chain []string
	for range 20 {
		req, _ := http.NewRequest(http.MethodGet, next, nil)
		req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
		resp, err := b.Client.Do(req)
		if err != nil {
			more := ""
			if logs != nil {
				more = "\nsidecar:\n" + logs()
			}
			t.Fatalf("GET %s: %v%s", next, err, more)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode < 300 || resp.StatusCode > 399 || loc == "" {
			return resp, string(body), chain
		}
		u, _ := resp.Request.URL.Parse(loc)
		if stop != nil && stop(u) {
			return resp, string(body), chain
		}
		next = u.String()
		chain = append(chain, next)
	}
	t.Fatalf("too many redirects: %v", chain)
	return nil, "", nil
}

// Cookie is the value of the cookie name the browser would send to rawURL.
func (b *Browser) Cookie(rawURL, name string) string {
	u, _ := url.Parse(rawURL)
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}
