package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
	"github.com/reactor-alerts/reactor/stream/streamtest/lazyfs"
)

// syncIntervalDefault is nats-server's fsync interval when SyncAlways is
// off (defaultSyncInterval in its filestore).
const syncIntervalDefault = 2 * time.Minute

// TestPowerLoss runs `reactor run` with its data dir on a filesystem that
// loses what was not fsync'ed (lazyfs), publishes alerts to it under load
// while it handles and acks them, then pulls the plug: kill -9 and every
// write not fsync'ed dropped. Restarted on what remains, the alert stream
// must hold every alert whose PubAck the publisher received: all of them
// with --sync-always; without it, only those acknowledged before the
// server's last fsync, at most syncIntervalDefault before the power loss.
//
// A soak (task soak). REACTOR_POWERLOSS_ROUNDS (default 5) and
// REACTOR_POWERLOSS_LOAD (the load before the first power loss, default 3s,
// the others shorter; past 2m it spans nats-server's own fsync) size it.
func TestPowerLoss(t *testing.T) {
	if !streamtest.Soak() {
		t.Skipf("a soak: %s=1 (task soak) runs it", streamtest.SoakEnv)
	}
	rounds := envInt(t, "REACTOR_POWERLOSS_ROUNDS", 5)
	load := envDuration(t, "REACTOR_POWERLOSS_LOAD", 3*time.Second)
	for _, syncAlways := range []bool{true, false} {
		t.Run(fmt.Sprintf("sync-always=%v", syncAlways), func(t *testing.T) {
			testPowerLoss(t, syncAlways, rounds, load)
		})
	}
}

func testPowerLoss(t *testing.T, syncAlways bool, rounds int, load time.Duration) {
	fsys := lazyfs.New(t)
	dataDir := filepath.Join(fsys.Dir(), "data")
	var args []string
	if syncAlways {
		args = append(args, "--sync-always")
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 23))
	acked := map[string]time.Time{} // id → when its PubAck came
	var total, lost int
	var crash time.Time // the last power loss
	for round := 1; round <= rounds+1; round++ {
		run := startRunWriter(t, io.Discard, nil, dataDir, args...)
		conn := streamtest.Connect(t, run.url)
		// What the last power loss left: every acknowledged alert, bar
		// those acked after the server's last fsync.
		if round > 1 {
			ids := streamtest.MsgIDs(t, conn.JS, stream.AlertsDefault)
			var missing, old int
			var oldest time.Duration // the oldest loss: acked this long before the power loss
			for id, at := range acked {
				if ids[id] == 0 {
					missing++
					oldest = max(oldest, crash.Sub(at))
					if crash.Sub(at) > syncIntervalDefault+time.Second {
						old++
					}
					delete(acked, id) // counted once
				}
			}
			lost += missing
			t.Logf("round %d: %d acknowledged alerts lost (acked up to %s before the power loss), %d stored",
				round-1, missing, oldest.Round(time.Millisecond), len(ids))
			if old > 0 {
				t.Errorf("round %d: %d lost alerts were acknowledged more than %s before the power loss", round-1, old, syncIntervalDefault)
			}
		}
		if round > rounds {
			conn.Close()
			run.kill()
			break
		}
		d := load // the first round the longest, the others shorter
		if round > 1 {
			d = load/10 + time.Duration(rng.Int64N(int64(load-load/10)))
		}
		n := publishUntil(t, conn, round, d, acked)
		total += n
		run.kill() // kill -9 mid-load, then the power goes
		crash = time.Now()
		conn.Close()
		loss, err := fsys.PowerLoss()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d alerts acknowledged; power loss dropped %d bytes of %d unsynced files (%d fsyncs so far)",
			round, n, loss.Bytes, loss.Files, fsys.Fsyncs())
	}
	t.Logf("%d power losses: %d of %d acknowledged alerts lost (sync-always %v)", rounds, lost, total, syncAlways)
	if syncAlways && lost > 0 {
		t.Errorf("--sync-always lost %d acknowledged alerts", lost)
	}
}

// publishUntil publishes alerts in batches for d, recording in acked those
// whose PubAck came, and returns how many did. The power loss comes while
// the last batch is in flight.
func publishUntil(t *testing.T, conn *stream.Conn, round int, d time.Duration, acked map[string]time.Time) int {
	t.Helper()
	pub := stream.NewPublisher(conn.JS, stream.PublisherConfig{Attempts: 1})
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	n := 0
	for batch := 0; ctx.Err() == nil; batch++ {
		msgs := make([]*nats.Msg, 200)
		for i := range msgs {
			a := stream.NewAlert("powerloss", "under load")
			a.ID = fmt.Sprintf("pl-%d-%d-%d", round, batch, i)
			msg, err := a.Msg(conn.NC.MaxPayload())
			if err != nil {
				t.Fatal(err)
			}
			msgs[i] = msg
		}
		pub.PublishBatch(ctx, msgs, func(r stream.Result) {
			if r.Err == nil {
				mu.Lock()
				acked[msgs[r.Index].Header.Get(nats.MsgIdHdr)] = time.Now()
				n++
				mu.Unlock()
			}
		})
	}
	return n
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a duration such as 3s", name, v)
	}
	return d
}
