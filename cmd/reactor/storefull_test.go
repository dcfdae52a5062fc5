package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestStoreFullCLI fills the alert stream of `reactor run --max-bytes`: send
// fails at once with what is full and what to do (exit 1), send --file
// stops at the first refused line and says what was stored and what was
// not (exit 3), status says FULL; once room is made, send stores again and
// run handles it, without a restart.
func TestStoreFullCLI(t *testing.T) {
	t.Parallel()
	run := startRun(t, "", "--max-bytes", "65536")
	var file strings.Builder
	const lines = 2500
	for i := range lines {
		fmt.Fprintf(&file, `{"name":"fill","id":"fill-%d","summary":"%s"}`+"\n", i, strings.Repeat("x", 200))
	}
	r := reactor(t, file.String(), "send", "--url", run.url, "--file", "-", "--json")
	var st fileStats
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != exitPartial {
		t.Fatalf("send --file into a full stream: exit %d, %v\nstdout: %s\nstderr: %s", r.code, err, r.stdout, r.stderr)
	}
	full := st.StoreFull
	if full == nil || st.Stored == 0 || st.Stored >= batchSize || full.Line != st.Stored+1 ||
		len(full.Refused) != 1 || full.Refused[0] != (lineRange{From: st.Stored + 1, To: batchSize}) || full.NotSentFrom != batchSize+1 {
		t.Fatalf("send --file stopped as %+v (stored %d), want the first batch's refused lines and the rest not sent", full, st.Stored)
	}
	if st.Failed != batchSize-st.Stored || len(st.Errors) != 1 {
		t.Errorf("send --file: %d failed, %d errors, want %d failed said once", st.Failed, len(st.Errors), batchSize-st.Stored)
	}
	want := fmt.Sprintf("reactor: stopped at line %d, the store being full: lines %d-%d refused, lines from %d not sent\n", st.Stored+1, st.Stored+1, batchSize, batchSize+1)
	if !strings.HasSuffix(r.stderr, want) || strings.Count(r.stderr, "\n") != 2 || !strings.Contains(r.stderr, "--max-bytes") {
		t.Errorf("send --file stderr, want the refused line with a hint, then\n%s\ngot:\n%s", want, r.stderr)
	}

	r = reactor(t, "", "send", "--url", run.url, "--on", "one_more", strings.Repeat("does not fit ", 100))
	if r.code != exitFailure || !strings.Contains(r.stderr, "store full") || !strings.Contains(r.stderr, "--max-bytes") || strings.Contains(r.stderr, "API error") {
		t.Errorf("send into a full stream: exit %d, stderr %q; want 1 and what is full and what to do, in plain words", r.code, r.stderr)
	}
	if out := mustReactor(t, "", "status", "--url", run.url).stdout; !strings.Contains(out, "max 64 KiB: FULL, new alerts are refused") {
		t.Errorf("status does not say the alert stream is full:\n%s", out)
	}
	var status stream.Status
	if err := json.Unmarshal([]byte(mustReactor(t, "", "status", "--url", run.url, "--json").stdout), &status); err != nil {
		t.Fatal(err)
	}
	if !status.Alerts.Full || status.Alerts.MaxBytes != 65536 || status.Store.LimitOf != stream.LimitServer || status.Store.Full {
		t.Errorf("status --json: alerts %+v, store %+v", status.Alerts, status.Store)
	}

	// Room comes back (alerts purged, as age would remove them): send
	// stores again and run handles it.
	conn := streamtest.Connect(t, run.url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := conn.JS.Stream(ctx, stream.AlertsDefault)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	mustReactor(t, "", "send", "--url", run.url, "--on", "room_again", "--id", "room-again", "stored once there is room")
	if got := run.waitIDs(20*time.Second, st.Stored+1); got["room-again"] != 1 {
		t.Errorf("the alert sent after the purge was not handled once: %d", got["room-again"])
	}
}

// TestDiskFullCLI fills the disk under `reactor run`'s store with another
// file: the server's write fails and it answers no publish to the alert
// stream. send --file stops at the first unanswered line and says the disk
// is full (exit 3); send then fails at once (exit 1); status says so.
func TestDiskFullCLI(t *testing.T) {
	t.Parallel()
	dir := streamtest.Tmpfs(t, 8<<20)
	run := startRun(t, filepath.Join(dir, "data"))
	hog, err := os.Create(filepath.Join(dir, "hog"))
	if err != nil {
		t.Fatal(err)
	}
	defer hog.Close()
	if _, err := hog.Write(make([]byte, 8<<20)); err == nil {
		t.Fatal("wrote 8 MiB on an 8 MiB tmpfs that holds a store: the disk is not full")
	}
	var file strings.Builder
	for i := range 20 {
		fmt.Fprintf(&file, `{"name":"fill","summary":"%d %s"}`+"\n", i, strings.Repeat("x", 500))
	}
	r := reactor(t, file.String(), "send", "--url", run.url, "--file", "-")
	if r.code != exitPartial || !strings.Contains(r.stderr, "no space left on device") ||
		!strings.HasSuffix(r.stderr, "reactor: stopped at line 1, the disk under the store being full: lines 1-20 refused\n") {
		t.Errorf("send --file on a full disk: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = reactor(t, "", "send", "--url", run.url, "--on", "one_more", "no room")
	if r.code != exitFailure || !strings.Contains(r.stderr, "the disk under the server's store is full") || !strings.Contains(r.stderr, "restart") {
		t.Errorf("send on a full disk: exit %d, stderr %q", r.code, r.stderr)
	}
	if out := mustReactor(t, "", "status", "--url", run.url).stdout; !strings.Contains(out, "the disk is FULL, the server stores nothing more") {
		t.Errorf("status does not say the disk is full:\n%s", out)
	}
}
