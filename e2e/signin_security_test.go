package e2e_test

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// TestSignInHandoffOnlyToPublicPorts is issue 14's first hole, through the
// real Envoy: someone who can read another port of a route host (an
// upstream's own port, a shared machine) crafts a sign-in link that would
// send a signed-in administrator's handoff there, to redeem it on the real
// host within 60 s. Every such link is refused before any handoff is made,
// a handoff that reaches the wrong browser is spent, and ordinary single
// sign-on through the public port keeps working.
func TestSignInHandoffOnlyToPublicPorts(t *testing.T) {
	st := startOIDCStack(t)

	// The attacker's server on another port of the machine the route hosts
	// resolve to; it counts what reaches it.
	var reached atomic.Int64
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	attackerPort := strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)
	elsewhere := map[string]string{attackerPort: lis.Addr().String()}

	authHost := fmt.Sprintf("authenticate.localhost:%d", st.listen)
	app := st.envoy.URLFor("app.localhost")

	// The victim, an administrator, signs in as usual: single sign-on works
	// through the public port.
	st.provider.AutoLogin("alice")
	victim := st.browser(t, elsewhere)
	if status, body, chain := victim.browse(st.envoy.URLFor("admin.localhost")+"/headers", nil); status != http.StatusOK || !strings.Contains(body, "alice@corp.example") {
		t.Fatalf("alice's sign-in to admin ended with %d after %v\n%s\nsidecar:\n%s", status, chain, body, st.logs.String())
	}
	st.provider.AutoLogin("") // no second login at the provider from here on
	if status, body, chain := victim.browse(st.envoy.URLFor("wiki.localhost")+"/headers", nil); status != http.StatusOK || !strings.Contains(body, "alice@corp.example") {
		t.Fatalf("single sign-on to the wiki ended with %d after %v\n%s", status, chain, body)
	}
	if n := st.provider.Logins(); n != 1 {
		t.Errorf("the provider's login was reached %d times, want 1", n)
	}

	// The attacker starts a sign-in in their own browser to get a binding
	// of their own for the app.
	attacker := st.browser(t, elsewhere)
	var toAuth *url.URL
	attacker.browse(app+"/", func(u *url.URL) bool {
		if u.Path == "/.pomerium/sign_in" && u.Host == authHost {
			toAuth = u
			return true
		}
		return false
	})
	if toAuth == nil || toAuth.Query().Get("pomerium_signin") == "" {
		t.Fatalf("the app did not send the attacker to the authenticate host with a binding: %v", toAuth)
	}
	binding := toAuth.Query().Get("pomerium_signin")

	crafted := func(host, target string) string {
		q := url.Values{"pomerium_redirect_uri": {target}}
		if host == authHost {
			q.Set("pomerium_signin", binding)
		}
		return "http://" + host + "/.pomerium/sign_in?" + q.Encode()
	}
	for _, tc := range []struct {
		name, link string
	}{
		{name: "a link to the authenticate host targeting another port of the app is refused",
			link: crafted(authHost, "http://app.localhost:"+attackerPort+"/steal")},
		{name: "a link to the authenticate host targeting another port of the admin host is refused",
			link: crafted(authHost, "http://admin.localhost:"+attackerPort+"/")},
		{name: "a link to the authenticate host targeting the app on its default port is refused",
			link: crafted(authHost, "http://app.localhost/")},
		{name: "a link to the authenticate host targeting the app over another scheme is refused",
			link: crafted(authHost, "https://app.localhost:"+strconv.Itoa(st.listen)+"/")},
		{name: "a link to the app targeting another port of the app is refused",
			link: crafted(fmt.Sprintf("app.localhost:%d", st.listen), "http://app.localhost:"+attackerPort+"/")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, chain := victim.browse(tc.link, nil)
			if status != http.StatusBadRequest || !strings.Contains(body, "is not allowed") {
				t.Errorf("answered %d after %v, want 400 saying the page is not allowed\n%s", status, chain, body)
			}
			for _, u := range chain {
				if strings.Contains(u, "pomerium_handoff") {
					t.Errorf("a handoff was made: %s", u)
				}
			}
		})
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("%d requests reached the attacker's port", n)
	}

	t.Run("a link with someone else's binding to the public port signs nobody in, and its handoff is spent", func(t *testing.T) {
		var handoff string
		status, _, _ := victim.browse(crafted(authHost, app+"/"), func(u *url.URL) bool {
			if u.Query().Has("pomerium_handoff") {
				handoff = u.String() // seen (say, leaked), and still followed by the victim
			}
			return false
		})
		if handoff == "" {
			t.Fatal("no handoff to the app")
		}
		if status != http.StatusBadRequest {
			t.Errorf("the victim's browser got %d at the app, want 400: the sign-in did not start there", status)
		}
		status, body, _ := attacker.browse(handoff, nil)
		if status != http.StatusBadRequest || !strings.Contains(body, "already used") {
			t.Errorf("the attacker redeeming the victim's handoff got %d, want 400 already used\n%s", status, body)
		}
		appURL, _ := url.Parse(app + "/")
		for _, c := range attacker.jar.Cookies(appURL) {
			if c.Name == "_pomerium" {
				t.Error("the attacker got a session on the app")
			}
		}
	})

	// No handoff ever shows in the sidecar's log.
	if strings.Contains(st.logs.String(), "pomerium_handoff=") {
		t.Error("a handoff is in the sidecar's log")
	}
}
