package processor_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func TestPausedGroupReceivesNothingAndSaysSo(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.cfg.Group = "ops"
	var logs logBuffer
	b.cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	b.router.On("alerts.>", func(context.Context, *processor.Message) error { return nil })
	b.start()
	b.publish(1, "alerts.before")
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.count(processor.OutcomeAck) == 1 }, "first alert acked")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := stream.PauseGroup(ctx, b.conn.JS, b.topo, b.cfg.Group, time.Time{}); err != nil {
		t.Fatal(err)
	}
	streamtest.Eventually(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "group paused") }, "no 'group paused' in the log:\n%s", &logs)
	b.publish(3, "alerts.during")
	// The server holds the processor's pull request and delivers nothing.
	streamtest.Eventually(t, 10*time.Second, func() bool {
		c, err := b.conn.JS.Consumer(ctx, b.topo.WithDefaults().Alerts, b.cfg.Group)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 3 && info.NumWaiting > 0
	}, "paused consumer with 3 pending alerts and a waiting pull")
	if n := b.count(processor.OutcomeAck); n != 1 {
		t.Fatalf("%d alerts handled while paused, want only the one before", n)
	}

	if err := stream.ResumeGroup(ctx, b.conn.JS, b.topo, b.cfg.Group); err != nil {
		t.Fatal(err)
	}
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.count(processor.OutcomeAck) == 4 }, "alerts acked after resume")
	streamtest.Eventually(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "group resumed") }, "no 'group resumed' in the log")
}

func TestProcessorStartingOnPausedGroupSaysSo(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.cfg.Group = "ops"
	var logs logBuffer
	b.cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	b.router.On("alerts.>", func(context.Context, *processor.Message) error { return nil })
	stop := b.start()
	streamtest.Eventually(t, 10*time.Second, func() bool {
		_, err := stream.PauseGroup(context.Background(), b.conn.JS, b.topo, b.cfg.Group, time.Now().Add(time.Hour))
		return err == nil
	}, "group paused")
	pulling := func() bool {
		c, err := b.conn.JS.Consumer(context.Background(), b.topo.WithDefaults().Alerts, b.cfg.Group)
		return err == nil && c.CachedInfo().NumWaiting > 0
	}
	streamtest.Eventually(t, 10*time.Second, pulling, "processor pulling")
	stop()
	before := len(logs.String())
	b.start()
	streamtest.Eventually(t, 5*time.Second, func() bool {
		return strings.Contains(logs.String()[before:], "group paused") && strings.Contains(logs.String()[before:], "until=")
	}, "restarted processor did not log its group's pause:\n%s", &logs)
	streamtest.Eventually(t, 10*time.Second, pulling, "restarted processor pulling")
}
