package processor_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/embedded"
)

func ExampleRouter_On() {
	r := processor.NewRouter()
	r.On("alerts.terminator_detected", func(_ context.Context, m *processor.Message) error {
		fmt.Printf("alerting Sarah Connor: %s\n", m.Data())
		return nil
	})
	r.On("alerts.>", func(_ context.Context, m *processor.Message) error {
		fmt.Printf("logged %s\n", m.Subject())
		return nil
	})

	for _, subject := range []string{"alerts.terminator_detected", "alerts.disk_full"} {
		_ = r.Process(context.Background(), processor.NewMessage(subject, []byte("bad robot detected"), nil, processor.MessageInfo{}))
	}
	err := r.Process(context.Background(), processor.NewMessage("metrics.cpu", nil, nil, processor.MessageInfo{}))
	fmt.Println(errors.Is(err, processor.ErrNoHandler))
	// Output:
	// alerting Sarah Connor: bad robot detected
	// logged alerts.disk_full
	// true
}

func ExampleNew() {
	dir, _ := os.MkdirTemp("", "reactor-example")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// An embedded server, reachable only from this process.
	conn, err := embedded.Open(ctx, embedded.Config{DataDir: dir, DontListen: true}, stream.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	done := make(chan struct{})
	r := processor.NewRouter()
	r.On("alerts.terminator_detected", func(_ context.Context, m *processor.Message) error {
		fmt.Printf("%s: %s (delivery %d)\n", m.Subject(), m.Data(), m.Delivered())
		close(done)
		return nil
	})
	p, err := processor.New(conn.JS, r, processor.Config{Workers: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	stopped := make(chan error)
	go func() { stopped <- p.Run(ctx) }()

	msg := nats.NewMsg("alerts.terminator_detected")
	msg.Header.Set(nats.MsgIdHdr, "t-800")
	msg.Data = []byte("bad robot detected")
	if err := stream.EnsureStreams(ctx, conn.JS, stream.Topology{}); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := stream.NewPublisher(conn.JS, stream.PublisherConfig{}).Publish(ctx, msg); err != nil {
		fmt.Println(err)
		return
	}
	<-done
	cancel()
	fmt.Println("stopped:", <-stopped)
	// Output:
	// alerts.terminator_detected: bad robot detected (delivery 1)
	// stopped: <nil>
}
