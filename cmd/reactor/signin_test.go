package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/reactor-alerts/reactor/cmd/reactor/internal/browsertest"
)

// A console behind --http-token opens in Chromium: the browser answers the
// Basic challenge with the token as the password (a user types it in its
// sign-in dialog), loads the pages and their stylesheet, and a wrong token
// gets the 401 and nothing of the console.
func TestConsoleSignInChromium(t *testing.T) {
	t.Parallel()
	const token = "S3cret-browser-token"
	run := startRun(t, "", "--http", "127.0.0.1:0", "--http-token", token)
	base := run.ingestURL()

	t.Run("token", func(t *testing.T) {
		ctx := browsertest.New(t)
		asked := browsertest.Credentials(t, ctx, "anyone", token)
		resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(base+"/"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != 200 {
			t.Fatalf("signed in with the token: status %d, want 200", resp.Status)
		}
		if n := asked.Load(); n != 1 {
			t.Errorf("the browser was asked for credentials %d times, want once", n)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/groups"), chromedp.WaitVisible(chromedp.CSS("nav"))); err != nil {
			t.Fatal(err)
		}
		title, err := chromedp.Run(ctx, chromedp.Title())
		if err != nil || !strings.HasPrefix(title, "Groups") {
			t.Errorf("groups page title %q (%v)", title, err)
		}
		styled, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.styleSheets.length > 0 && document.styleSheets[0].cssRules.length > 0`))
		if err != nil || !styled {
			t.Errorf("the stylesheet did not load with the browser's credentials (%v)", err)
		}
		if n := asked.Load(); n != 1 {
			t.Errorf("the browser was asked for credentials %d times, want once: it keeps them for the console", n)
		}
	})

	t.Run("wrong token", func(t *testing.T) {
		ctx := browsertest.New(t)
		asked := browsertest.Credentials(t, ctx, "anyone", "not-the-token")
		resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(base+"/"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != 401 {
			t.Errorf("signed in with a wrong token: status %d, want 401", resp.Status)
		}
		if asked.Load() == 0 {
			t.Error("the browser was never asked for credentials")
		}
		body, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(body, "Overview") || !strings.Contains(body, "wrong token") {
			t.Errorf("the refused page shows:\n%s", body)
		}
	})
	run.waitStderr(10*time.Second, `"msg":"http request rejected"`)
	if strings.Contains(strings.Join(run.stderr.snapshot(), "\n"), token) {
		t.Error("the log shows the token")
	}
}
