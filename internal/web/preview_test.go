package web_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/identity"
)

func TestPreview(t *testing.T) {
	f, b := adminBrowser(t)
	cases := []struct {
		name   string
		email  string
		groups string
		want   identity.Identity
	}{
		{name: "an engineer's preview matches Route.Evaluate", email: user, groups: "engineering", want: identity.Identity{Email: user, Groups: []string{"engineering"}}},
		{name: "an outsider's preview matches Route.Evaluate", email: "eve@outside.example", want: identity.Identity{Email: "eve@outside.example"}},
		{name: "a partner's preview matches Route.Evaluate", email: "Carol@Partner.Example", want: identity.Identity{Email: "carol@partner.example"}},
		{name: "a groups-only preview matches Route.Evaluate", groups: " support , engineering ,", want: identity.Identity{Groups: []string{"support", "engineering"}}},
		{name: "the administrator's own email previews like anyone's", email: admin, want: identity.Identity{Email: admin}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := b.csrf(appHost, "/.pomerium/")
			r := b.post(appHost, "/.pomerium/preview", form("email", c.email, "groups", c.groups, "_csrf", tok), "Accept", "application/json")
			if r.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", r.StatusCode, r.body)
			}
			d := decodeDashboard(t, r)
			if d.Preview == nil {
				t.Fatal("no preview in the answer")
			}
			if want := expected(t, f, c.want); !reflect.DeepEqual(d.Preview.Routes, want) {
				t.Errorf("preview\n got %+v\nwant %+v", d.Preview.Routes, want)
			}
			if d.Email != admin || d.Impersonating {
				t.Error("previewing changed the session")
			}

			html := b.post(appHost, "/.pomerium/preview", form("email", c.email, "groups", c.groups, "_csrf", tok))
			if html.StatusCode != http.StatusOK || !strings.Contains(html.body, `id="preview-result"`) {
				t.Fatalf("HTML preview: status %d", html.StatusCode)
			}
			for _, row := range expected(t, f, c.want) {
				if !strings.Contains(html.body, row.Reason) {
					t.Errorf("HTML preview lacks %q", row.Reason)
				}
			}
		})
	}

	t.Run("each preview is audited with the actor and the previewed identity", func(t *testing.T) {
		e := f.audit("policy_preview")
		if len(e) != 2*len(cases) {
			t.Fatalf("want %d policy_preview entries, got %d", 2*len(cases), len(e))
		}
		m := e[0].ContextMap()
		if m["actor_email"] != admin || m["actor_user"] != "alice" || m["preview_email"] != user || m["host"] != appHost || m["request_id"] == "" {
			t.Errorf("audit %v", m)
		}
	})

	t.Run("a preview without an email or groups is refused", func(t *testing.T) {
		r := b.post(appHost, "/.pomerium/preview", form("email", " ", "_csrf", b.csrf(appHost, "/.pomerium/")))
		if r.StatusCode != http.StatusBadRequest || !strings.Contains(r.body, "Enter an email, groups, or both") {
			t.Errorf("status %d", r.StatusCode)
		}
	})

	t.Run("a preview without the CSRF token is refused", func(t *testing.T) {
		if r := b.post(appHost, "/.pomerium/preview", form("email", user)); r.StatusCode != http.StatusForbidden {
			t.Errorf("status %d", r.StatusCode)
		}
	})

	t.Run("a non-administrator cannot preview", func(t *testing.T) {
		nb := f.signedIn(f.token(user, "engineering"))
		r := nb.post(appHost, "/.pomerium/preview", form("email", admin, "_csrf", nb.csrf(appHost, "/.pomerium/")))
		if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "Only administrators") || strings.Contains(r.body, `id="preview-result"`) {
			t.Errorf("status %d", r.StatusCode)
		}
	})
}
