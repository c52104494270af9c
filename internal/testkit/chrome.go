package testkit

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/extauthz/extauthz/internal/envoytest"
)

// Chrome starts a headless Chromium with a fresh profile and returns a
// chromedp context that ends after timeout or with the test. Without a
// Chromium it skips, except under CI, where .ci/run installs Debian's and a
// missing one fails the test.
func Chrome(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// chromium finds a Chromium binary: $CHROMIUM_BIN, then the usual names.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{os.Getenv("CHROMIUM_BIN"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if envoytest.InCI() {
		t.Fatal("no Chromium found (CI=true): .ci/run installs Debian's chromium")
	}
	t.Skip("no Chromium found: install Debian's chromium (or set CHROMIUM_BIN) to run the browser tests")
	return ""
}
