package console_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/reactor-alerts/reactor/cmd/reactor/internal/console"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestOverviewScreenshot runs a few minutes of workload (a wave of alerts,
// some failing, the group paused for a while) and saves the overview for
// docs/console.md: REACTOR_SCREENSHOTS=dir go test -run TestOverviewScreenshot.
func TestOverviewScreenshot(t *testing.T) {
	if os.Getenv("REACTOR_SCREENSHOTS") == "" {
		t.Skip("set REACTOR_SCREENSHOTS=dir to take the screenshot of docs/console.md (it takes 4 minutes)")
	}
	b := setupWith(t, console.Config{SampleInterval: 2 * time.Second, ChartWindow: 30 * time.Minute, Refresh: console.RefreshDefault})
	b.startProcessor()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.console.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	const seconds = 240
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for s := range seconds {
		<-tick.C
		n := int(40 + 30*math.Sin(float64(s)/25))
		for i := range n {
			name := "cpu"
			if i%37 == 0 {
				name = "fail.disk"
			}
			b.send(name, "warning", fmt.Sprintf("load %d", i), map[string]string{"host": fmt.Sprintf("web-%d", i%5)})
		}
		switch s {
		case 100:
			if _, err := stream.PauseGroup(ctx, b.conn.JS, b.topo, "ops", time.Time{}); err != nil {
				t.Fatal(err)
			}
		case 160:
			if err := stream.ResumeGroup(ctx, b.conn.JS, b.topo, "ops"); err != nil {
				t.Fatal(err)
			}
		}
	}
	streamtest.Eventually(t, 30*time.Second, func() bool { return b.group("ops").Backlog == 0 }, "backlog drained")
	t.Logf("workload of %s done", time.Since(start).Round(time.Second))
	bctx := browser(t)
	do(t, bctx, chromedp.EmulateViewport(1100, 800), chromedp.Navigate(b.srv.URL+"/"))
	if got := text(t, bctx, "#chart-published"); got == "0" {
		t.Fatalf("chart shows nothing published")
	}
	screenshot(t, bctx, "overview-workload")
}
