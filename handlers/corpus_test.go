package handlers_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// lockedBuffer is an io.Writer the test can read while workers write.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestBadInputCorpus runs testdata/alerts through the processor with the
// default handlers: every good alert is printed, every bad one is
// dead-lettered with its reason, and the process keeps going.
func TestBadInputCorpus(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)
	out := &lockedBuffer{}
	r, err := handlers.NewRules(handlers.Config{}, handlers.Deps{Out: out})
	if err != nil {
		t.Fatal(err)
	}

	reasons := readReasons(t, "../testdata/alerts/bad/REASONS")
	good, _ := filepath.Glob("../testdata/alerts/good/*")
	for _, f := range good {
		streamtest.Publish(t, conn, "alerts.corpus", "good-"+filepath.Base(f), readFile(t, f))
	}
	for name := range reasons {
		streamtest.Publish(t, conn, "alerts.corpus", "bad-"+name, readFile(t, "../testdata/alerts/bad/"+name))
	}
	// An alert close to the server's 1 MiB max payload that is not valid:
	// its dead letter (payload + reason headers) must still fit.
	huge := append([]byte(`{"summary":"`+strings.Repeat("x", 1<<20-400)+`","oops":1}`), '\n')
	streamtest.Publish(t, conn, "alerts.corpus", "bad-huge", huge)
	reasons["huge"] = `unknown field "oops"`

	var mu sync.Mutex
	settled := map[string]processor.Outcome{}
	p, err := processor.New(conn.JS, r, processor.Config{
		Topology: topo, Workers: 4,
		OnOutcome: func(res processor.Result) {
			mu.Lock()
			settled[res.Message.ID()] = res.Outcome
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	total := len(good) + len(reasons)
	streamtest.Eventually(t, 15*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(settled) != total {
			return fmt.Errorf("%d of %d alerts settled", len(settled), total)
		}
		return nil
	})

	mu.Lock()
	for _, f := range good {
		if o := settled["good-"+filepath.Base(f)]; o != processor.OutcomeAck {
			t.Errorf("good alert %s: outcome %v, want ok", filepath.Base(f), o)
		}
	}
	for name := range reasons {
		if o := settled["bad-"+name]; o != processor.OutcomeDeadLetter {
			t.Errorf("bad alert %s: outcome %v, want dead_lettered", name, o)
		}
	}
	mu.Unlock()
	if lines := strings.Count(out.String(), "\n"); lines != len(good) {
		t.Errorf("printed %d lines, want %d:\n%s", lines, len(good), out.String())
	}

	dls := deadLetters(t, conn, topo)
	if len(dls) != len(reasons) {
		t.Fatalf("DLQ has %d dead letters, want %d", len(dls), len(reasons))
	}
	for _, d := range dls {
		name := strings.TrimPrefix(d.MsgID, "bad-")
		if want := reasons[name]; d.Reason != stream.ReasonPermanent || !strings.Contains(d.Error, want) {
			t.Errorf("%s: reason %q error %q, want permanent with %q", name, d.Reason, d.Error, want)
		}
		if name == "huge" && (d.Truncated != len(huge) || len(d.Data) >= len(huge)) {
			t.Errorf("huge: truncated=%d kept %d bytes, want the original size %d recorded and the payload cut", d.Truncated, len(d.Data), len(huge))
		}
	}

	// Still up: a good alert after all of that is handled.
	streamtest.Publish(t, conn, "alerts.corpus", "after", []byte("still alive"))
	streamtest.Eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if settled["after"] != processor.OutcomeAck || len(settled) != total+1 {
			return fmt.Errorf("%d of %d alerts settled, the last one %v", len(settled), total+1, settled["after"])
		}
		return nil
	}, "the alert after the corpus")
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readReasons(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, reason, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("%s: bad line %q", path, line)
		}
		out[name] = reason
	}
	return out
}

func deadLetters(t *testing.T, conn *stream.Conn, topo stream.Topology) []stream.DeadLetter {
	t.Helper()
	ctx := context.Background()
	s, err := conn.JS.Stream(ctx, topo.DLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []stream.DeadLetter
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("dlq %d: %v", seq, err)
		}
		out = append(out, stream.ParseDeadLetter(raw.Subject, raw.Data, raw.Header))
	}
	return out
}
