package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestHandlerFaultsRecover mixes the faults handlers meet in production:
// panics, handlers that hang past their timeout, and a webhook target that is
// down for a while. Every alert ends handled, none dead-lettered, and no
// goroutine is left behind (TestMain runs goleak).
func TestHandlerFaultsRecover(t *testing.T) {
	t.Parallel()
	conn, topo := streamtest.NewTopology(t)

	var up atomic.Bool
	var hits, refused atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if !up.Load() {
			refused.Add(1)
			http.Error(w, "down for maintenance", http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	webhook := &handlers.Webhook{URL: hook.URL, Timeout: 5 * time.Second, Client: client}
	var panics, hangs atomic.Int32
	r := processor.NewRouter()
	// The timeout wraps only the faulty handler: a slow webhook call on a
	// loaded machine must not count as an injected fault.
	faulty := processor.HandlerFunc(func(ctx context.Context, m *processor.Message) error {
		first := m.Delivered() == 1
		switch {
		case first && strings.HasSuffix(m.Subject(), ".panic"):
			panics.Add(1)
			panic("handler bug on first delivery")
		case first && strings.HasSuffix(m.Subject(), ".hang"):
			hangs.Add(1)
			<-ctx.Done() // hangs until the timeout middleware gives up
			return ctx.Err()
		}
		return nil
	})
	r.Handle("alerts.faulty.>", processor.Timeout(100*time.Millisecond)(faulty))
	r.Handle("alerts.hook", webhook)

	const n = 400
	for i := range n {
		subject := "alerts.faulty.ok"
		switch {
		case i%100 == 0:
			subject = "alerts.faulty.panic" // 1%
		case i%100 == 1:
			subject = "alerts.faulty.hang" // 1%
		case i%10 == 2:
			subject = "alerts.hook"
		}
		streamtest.Publish(t, conn, subject, fmt.Sprint("fault-", i), []byte(`{"summary":"fault test"}`))
	}

	var mu sync.Mutex
	outcomes := map[processor.Outcome]int{}
	acked := map[string]bool{}
	p, err := processor.New(conn.JS, r, processor.Config{
		Topology: topo, Workers: 8, MaxDeliver: 20,
		BackoffBase: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		OnOutcome: func(res processor.Result) {
			mu.Lock()
			defer mu.Unlock()
			outcomes[res.Outcome]++
			if res.Outcome == processor.OutcomeAck {
				acked[res.Message.ID()] = true
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()

	// The webhook target comes back once it has refused a few calls.
	streamtest.Eventually(t, 10*time.Second, func() error {
		if got := refused.Load(); got < 20 {
			return fmt.Errorf("the webhook refused %d calls of 20", got)
		}
		return nil
	})
	up.Store(true)
	streamtest.Eventually(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) != n {
			return fmt.Errorf("%d of %d alerts handled", len(acked), n)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if outcomes[processor.OutcomeDeadLetter] != 0 {
		t.Errorf("%d dead-lettered, want 0: every fault was transient", outcomes[processor.OutcomeDeadLetter])
	}
	if want := int(panics.Load() + hangs.Load() + refused.Load()); outcomes[processor.OutcomeRetry] != want {
		t.Errorf("%d retries, want %d (%d panics, %d hangs, %d webhook refusals)", outcomes[processor.OutcomeRetry], want, panics.Load(), hangs.Load(), refused.Load())
	}
	if panics.Load() != 4 || hangs.Load() != 4 {
		t.Errorf("injected %d panics and %d hangs, want 4 and 4", panics.Load(), hangs.Load())
	}
}
