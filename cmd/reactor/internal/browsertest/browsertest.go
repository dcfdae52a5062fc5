// Package browsertest starts a headless Chromium for a test: the console's
// browser tests and the CLI's sign-in test drive pages with it.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
)

// New starts a headless Chromium for one test, with a profile of its own,
// and returns its tab's context. Without chromium the test is skipped,
// except in CI (CI=true), where .ci/run installs Debian's chromium and a
// missing one is a failure.
func New(t testing.TB) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium not found (CI=true): .ci/run installs it with apt-get install chromium")
		}
		t.Skip("chromium not found: install Debian's chromium (apt-get install chromium) to run the browser tests")
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser, for ctx's lifetime
		t.Fatalf("start chromium: %v", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(tcancel)
	return tctx
}

// Credentials answers the HTTP authentication challenges of the browser of
// ctx as a user answers its sign-in dialog: with user and password the
// first time a request asks, and by cancelling when the server refuses
// them and asks again. It returns how many challenges were answered so
// far. A challenge Chromium does not understand never gets here: the page
// shows the server's 401.
func Credentials(t testing.TB, ctx context.Context, user, password string) *atomic.Int32 {
	t.Helper()
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	auth := chromedp.Events(ctx, fetch.AuthRequired)
	yes := true
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &yes}); err != nil {
		t.Fatalf("enable fetch: %v", err)
	}
	var asked atomic.Int32
	answered := map[string]bool{} // the URLs given the credentials once
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range auth {
			if err != nil {
				return
			}
			asked.Add(1)
			resp := &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: user, Password: password}
			if answered[ev.Request.URL] {
				resp = &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseCancelAuth}
			}
			answered[ev.Request.URL] = true
			_, _ = chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID, AuthChallengeResponse: resp})
		}
	}()
	return &asked
}
