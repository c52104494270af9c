package e2e_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/testkit"
)

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("EXTAUTHZ_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// TestBrowserSignInAs drives the dashboard in headless Chromium through Envoy:
// sign in with a pasted token, impersonate with the form (read-only
// preselected), see the banner, reach the app as the target, preview another
// identity's access, stop impersonating.
func TestBrowserSignInAs(t *testing.T) {
	s := startStack(t)
	ctx := testkit.Chrome(t, 90*time.Second)
	alice := s.mint(t, identity.Claims{Email: "alice@corp.example", User: "alice", Groups: []string{"admins"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u-alice"}})
	base := s.envoy.URLFor("app.localhost")

	// An unauthenticated browser is sent to sign in, then back.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/.pomerium/"),
		chromedp.WaitVisible(chromedp.ID("token")),
	); err != nil {
		t.Fatalf("sign-in page: %v", err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(loc, "/.pomerium/sign_in") {
		t.Fatalf("landed on %s, want the sign-in page", loc)
	}
	screenshot(t, ctx, "1-sign-in")

	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("token"), alice),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("sign-in-as")),
	); err != nil {
		t.Fatalf("signing in: %v", err)
	}
	readOnlyChecked, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('input[name=access][value=read_only]').checked`))
	if err != nil {
		t.Fatal(err)
	}
	if !readOnlyChecked {
		t.Error("read-only is not preselected on the sign-in-as form")
	}
	screenshot(t, ctx, "2-dashboard-admin")

	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("imp-email"), "bob@corp.example"),
		chromedp.SendKeys(chromedp.ID("imp-groups"), "engineering"),
		chromedp.SendKeys(chromedp.ID("imp-reason"), "INC-42: reports page is empty for bob"),
		chromedp.Submit(chromedp.ID("imp-email")),
		chromedp.WaitVisible(chromedp.CSS(`.banner`)),
	); err != nil {
		t.Fatalf("impersonating: %v", err)
	}
	banner, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`.banner`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bob@corp.example", "Read-only", "INC-42", "left"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner %q lacks %q", banner, want)
		}
	}
	screenshot(t, ctx, "3-impersonating")

	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/headers")); err != nil {
		t.Fatalf("app as bob: %v", err)
	}
	app, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`body`)))
	if err != nil {
		t.Fatal(err)
	}
	var e echoed
	if err := json.Unmarshal([]byte(app), &e); err != nil {
		t.Fatalf("the app did not answer with the echo: %v: %s", err, app)
	}
	if e.Headers["x-pomerium-claim-email"] != "bob@corp.example" {
		t.Errorf("the app sees %q, want bob", e.Headers["x-pomerium-claim-email"])
	}
	claims := s.verifyWithJWKS(t, e.Headers["x-pomerium-jwt-assertion"])
	if act, _ := claims["act"].(map[string]any); act["email"] != "alice@corp.example" {
		t.Errorf("act = %v, want alice", claims["act"])
	}

	// Stop impersonating, then preview carol's access as alice.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/.pomerium/"),
		chromedp.WaitVisible(chromedp.CSS(`.btn-banner`)),
		chromedp.Click(chromedp.CSS(`.btn-banner`)),
		// The old page has the preview form too: wait for the reloaded one,
		// or the keys go to a node that is about to disappear.
		chromedp.WaitNotPresent(chromedp.CSS(`.banner`)),
		chromedp.WaitVisible(chromedp.ID("pv-email")),
		chromedp.SendKeys(chromedp.ID("pv-email"), "carol@corp.example"),
		chromedp.SendKeys(chromedp.ID("pv-groups"), "engineering"),
		chromedp.Submit(chromedp.ID("pv-email")),
		chromedp.WaitVisible(chromedp.ID("preview-result")),
	); err != nil {
		t.Fatalf("preview: %v", err)
	}
	result, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("preview-result")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"carol@corp.example", "allowed_groups matched engineering", "allowed_domains matched corp.example"} {
		if !strings.Contains(result, want) {
			t.Errorf("preview %q lacks %q", result, want)
		}
	}
	banners, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('.banner').length`))
	if err != nil {
		t.Fatal(err)
	}
	if banners != 0 {
		t.Error("the banner is still shown after stopping")
	}
	screenshot(t, ctx, "4-preview")
}
