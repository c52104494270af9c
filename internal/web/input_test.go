package web_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"time"

	"go.uber.org/zap/zapcore"
)

func TestBadInput(t *testing.T) {
	_, b := adminBrowser(t)
	csrf := b.csrf(appHost, "/.pomerium/")
	valid := "_csrf=" + urlEscape(csrf) + "&reason=r"
	cases := []struct {
		name        string
		path        string
		body        string
		contentType string
		want        int
		wantText    string
	}{
		{name: "an oversized form is refused", path: "/.pomerium/impersonate", body: valid + "&email=" + strings.Repeat("a", 70<<10), want: http.StatusBadRequest, wantText: "too large"},
		{name: "a duplicated email field is refused", path: "/.pomerium/impersonate", body: valid + "&email=bob%40corp.example&email=eve%40corp.example", want: http.StatusBadRequest, wantText: "sent more than once"},
		{name: "a duplicated CSRF field is refused", path: "/.pomerium/impersonate", body: valid + "&_csrf=x&email=bob%40corp.example", want: http.StatusBadRequest, wantText: "sent more than once"},
		{name: "a NUL byte in a value is refused", path: "/.pomerium/impersonate", body: valid + "&email=bob%00%40corp.example", want: http.StatusBadRequest, wantText: "NUL"},
		{name: "a NUL byte in a reason is refused", path: "/.pomerium/impersonate", body: "_csrf=" + urlEscape(csrf) + "&email=bob%40corp.example&reason=a%00b", want: http.StatusBadRequest, wantText: "NUL"},
		{name: "bytes that are not UTF-8 are refused", path: "/.pomerium/impersonate", body: valid + "&email=%ff%fe%40corp.example", want: http.StatusBadRequest, wantText: "UTF-8"},
		{name: "a field name that is not UTF-8 is refused", path: "/.pomerium/preview", body: valid + "&%ff=1", want: http.StatusBadRequest, wantText: "UTF-8"},
		{name: "a malformed percent-encoding is refused", path: "/.pomerium/impersonate", body: valid + "&email=%zz", want: http.StatusBadRequest, wantText: "not correctly encoded"},
		{name: "a multipart form is refused", path: "/.pomerium/impersonate", body: "--x\r\n", contentType: "multipart/form-data; boundary=x", want: http.StatusUnsupportedMediaType, wantText: "application/x-www-form-urlencoded"},
		{name: "a JSON body is refused", path: "/.pomerium/sign_in", body: `{"token":"x"}`, contentType: "application/json", want: http.StatusUnsupportedMediaType},
		{name: "too many fields are refused", path: "/.pomerium/preview", body: valid + manyFields(40), want: http.StatusBadRequest, wantText: "too many fields"},
		{name: "a token pasted with a NUL is refused", path: "/.pomerium/sign_in", body: valid + "&token=a%00b", want: http.StatusBadRequest, wantText: "NUL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := b.session(appHost)
			hdr := []string{}
			if c.contentType != "" {
				hdr = append(hdr, "Content-Type", c.contentType)
			}
			r := b.postRaw(appHost, c.path, c.body, hdr...)
			if r.StatusCode != c.want {
				t.Fatalf("status %d, want %d: %.300s", r.StatusCode, c.want, r.body)
			}
			if !strings.Contains(r.body, c.wantText) {
				t.Errorf("body lacks %q: %.300s", c.wantText, r.body)
			}
			if b.session(appHost) != before {
				t.Error("the session cookie changed")
			}
			if strings.ContainsRune(r.body, 0) || strings.Contains(r.body, "\xff") {
				t.Error("the answer echoes raw bytes")
			}
		})
	}

	t.Run("bad input answers JSON clients in JSON", func(t *testing.T) {
		r := b.postRaw(appHost, "/.pomerium/impersonate", valid+"&email=a&email=b", "Accept", "application/json")
		if r.StatusCode != http.StatusBadRequest || !strings.HasPrefix(r.body, "{") || !strings.Contains(r.body, `"request_id"`) {
			t.Errorf("status %d body %s", r.StatusCode, r.body)
		}
	})
}

func manyFields(n int) string {
	var s strings.Builder
	for i := range n {
		fmt.Fprintf(&s, "&f%d=1", i)
	}
	return s.String()
}

func urlEscape(s string) string {
	return strings.NewReplacer("%", "%25", "+", "%2B", "/", "%2F", "=", "%3D", "&", "%26").Replace(s)
}

func TestAuditNeverHoldsTheToken(t *testing.T) {
	f := newFixture(t)
	adminTok := f.token(admin)
	b := f.signedIn(adminTok)
	tokens := []string{adminTok}

	b.impersonate(appHost, form("email", user, "groups", "engineering, support", "access", "read_write", "reason", "INC-1234: reproduce the bug"))
	tokens = append(tokens, b.session(appHost))
	f.clock.Advance(40 * time.Minute)
	b.get(appHost, "/.pomerium/") // the impersonation ended
	tokens = append(tokens, b.session(appHost))
	b.impersonate(appHost, form("email", user, "reason", "again"))
	tokens = append(tokens, b.session(appHost))
	b.impersonate(appHost, form("email", "", "groups", ""))
	tokens = append(tokens, b.session(appHost))
	b.post(appHost, "/.pomerium/preview", form("email", user, "_csrf", b.csrf(appHost, "/.pomerium/")))

	t.Run("the audit log has one entry per event with actor, target, access and reason", func(t *testing.T) {
		want := map[string]int{"impersonation_started": 2, "impersonation_ended": 1, "impersonation_stopped": 1, "policy_preview": 1}
		for event, n := range want {
			if got := len(f.audit(event)); got != n {
				t.Errorf("%s: %d entries, want %d", event, got, n)
			}
		}
		started := f.audit("impersonation_started")[0].ContextMap()
		wantFields := map[string]any{
			"actor_email":          admin,
			"actor_user":           "alice",
			"impersonated_email":   user,
			"impersonated_groups":  []any{"engineering", "support"},
			"access":               "read_write",
			"impersonation_reason": "INC-1234: reproduce the bug",
			"host":                 appHost,
		}
		for k, v := range wantFields {
			if fmt.Sprint(started[k]) != fmt.Sprint(v) {
				t.Errorf("%s = %v, want %v", k, started[k], v)
			}
		}
		if id, _ := started["request_id"].(string); id == "" {
			t.Error("no request_id")
		}
	})

	t.Run("no audit entry contains a token", func(t *testing.T) {
		for _, e := range f.logs.All() {
			enc := zapcore.NewMapObjectEncoder()
			for _, fld := range e.Context {
				fld.AddTo(enc)
			}
			text := e.Message + fmt.Sprint(enc.Fields)
			for _, tok := range tokens {
				if tok != "" && strings.Contains(text, tok) {
					t.Errorf("entry %q holds a token", e.Message)
				}
				// Nor the signature part alone.
				if i := strings.LastIndexByte(tok, '.'); i > 0 && strings.Contains(text, tok[i+1:]) {
					t.Errorf("entry %q holds a token signature", e.Message)
				}
			}
		}
	})

	t.Run("the entries go to the logger named audit", func(t *testing.T) {
		for _, e := range f.logs.FilterMessage("impersonation_started").All() {
			if e.LoggerName != "audit" {
				t.Errorf("logger %q", e.LoggerName)
			}
		}
	})
}
