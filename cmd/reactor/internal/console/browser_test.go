package console_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/reactor-alerts/reactor/cmd/reactor/internal/browsertest"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// browser starts a headless Chromium for one test and returns its tab's
// context (see browsertest.New).
func browser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.New(t)
}

// do runs browser steps, failing the test on an error.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// click clicks the element matching a CSS selector and waits until the
// page it leads to has an element matching then.
func click(t *testing.T, ctx context.Context, sel, then string) {
	t.Helper()
	do(t, ctx, chromedp.Click(chromedp.CSS(sel)), chromedp.WaitVisible(chromedp.CSS(then)))
}

// textOf is the visible text of the first element matching a CSS selector,
// and whether there is one. It does not wait.
func textOf(ctx context.Context, sel string) (string, bool) {
	q, _ := json.Marshal(sel)
	s, err := chromedp.Run(ctx, chromedp.Evaluate[*string](`(e => e ? e.innerText.trim() : null)(document.querySelector(`+string(q)+`))`))
	if err != nil || s == nil {
		return "", false
	}
	return *s, true
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, ok := textOf(ctx, sel)
	if !ok {
		t.Fatalf("no element %s on the page", sel)
	}
	return s
}

// texts is the visible text of every element matching a CSS selector.
func texts(t *testing.T, ctx context.Context, sel string) []string {
	t.Helper()
	q, _ := json.Marshal(sel)
	out, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(`+string(q)+`)].map(e => e.innerText.trim())`))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitText waits until the first element matching sel has the text want,
// on the page as it is (it may refresh itself).
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	streamtest.Eventually(t, 20*time.Second, func() bool {
		s, _ := textOf(ctx, sel)
		return s == want
	}, "%s never showed %q", sel, want)
}

// screenshot saves the page as a user sees it in $REACTOR_SCREENSHOTS, when
// set: look at them after a change to the pages.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("REACTOR_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
