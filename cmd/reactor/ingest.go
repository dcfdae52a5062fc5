package main

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/reactor-alerts/reactor/processor/metrics"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/ingest"
)

// ingestShutdownTimeoutDefault bounds the requests in flight at Ctrl-C.
const ingestShutdownTimeoutDefault = 30 * time.Second

func ingestCommand() *cli.Command {
	flags := httpFlags(httpAddrDefault)
	flags = append(flags, connFlags(defaultURL)...)
	flags = append(flags, logFlags()...)
	flags = append(flags,
		&cli.DurationFlag{Name: "shutdown-timeout", Value: ingestShutdownTimeoutDefault, Usage: "on Ctrl-C, how long requests in flight may finish", EnvVars: []string{"REACTOR_SHUTDOWN_TIMEOUT"}, Category: catHTTP},
		&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics on host:port (/metrics, /healthz, /readyz: connected to NATS), e.g. 127.0.0.1:9464; default: off", EnvVars: []string{"REACTOR_METRICS"}, Category: catOutput},
	)
	return &cli.Command{
		Name:      "ingest",
		Usage:     "receive alerts over HTTP (Alertmanager, Grafana, JSON) and store them, without processing",
		UsageText: "reactor ingest [options] --http ADDR --url NATS_URL",
		Description: `Serves HTTP ingest alone, in front of the NATS server or cluster of --url,
so that an ingest tier scales apart from the workers (reactor run --http
serves the same beside processing). Endpoints (POST):
   /v1/alertmanager   Alertmanager's webhook (payload version 4)
   /v1/grafana        Grafana's webhook contact point
   /v1/alerts         reactor's alert JSON: an object, an array, or NDJSON
Each alert is stored on alerts.NAME; the answer is 200 once every alert of
the request is stored, 503 when storing fails (senders retry), 400 with a
JSON error for a malformed body, of which nothing is stored. The streams
are created by reactor run. Ctrl-C finishes the requests in flight, then
closes the NATS connection.

Examples:
   reactor ingest --http 127.0.0.1:8080 --url nats://127.0.0.1:4222
   REACTOR_HTTP_TOKEN=s3cret reactor ingest --http 0.0.0.0:8080 --url nats://nats-1:4222 --creds ops.creds
   curl -H 'Content-Type: application/json' -d '{"name":"disk_full","summary":"disk 95% on db-3"}' http://127.0.0.1:8080/v1/alerts`,
		Flags:  flags,
		Action: ingestAction,
	}
}

func ingestAction(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("ingest takes no arguments, got %q: see 'reactor ingest --help'", c.Args().First())
	}
	stderr := c.App.ErrWriter
	logger, _, err := newLogger(c, stderr)
	if err != nil {
		return err
	}
	hcfg, err := httpConfigFrom(c, logger)
	if err != nil {
		return err
	}
	if c.Duration("shutdown-timeout") <= 0 {
		return usageErrorf("--shutdown-timeout must be positive")
	}
	conn, err := connect(c)
	if err != nil {
		return err
	}
	defer conn.Close() // after the HTTP server stopped: deferred first, runs last
	var m *metrics.Metrics
	if c.String("metrics") != "" {
		m = metrics.New(prometheus.NewRegistry())
	}
	srv, err := serveIngest(c, hcfg, conn, m, logger)
	if err != nil {
		return err
	}
	if m != nil {
		ln, err := metrics.Listen(c.String("metrics"))
		if err != nil {
			_ = srv.stop(c.Duration("shutdown-timeout"))
			return withHint(err, "choose another --metrics address")
		}
		fmt.Fprintf(stderr, "reactor: metrics on http://%s/metrics\n", ln.Addr())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := metrics.Serve(c.Context, ln, m, conn.NC.IsConnected); err != nil {
				logger.Error("metrics server failed", "err", err)
			}
		}()
		defer func() { <-done }()
	}
	fmt.Fprintf(stderr, "reactor: ready: HTTP ingest on %s/v1/, storing into NATS at %s; Ctrl-C to stop\n",
		srv.url, streamConfig(c))
	<-c.Context.Done()
	fmt.Fprintf(stderr, "reactor: stopping: finishing requests in flight (up to %s)\n", c.Duration("shutdown-timeout"))
	if err := srv.stop(c.Duration("shutdown-timeout")); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "reactor: stopped")
	return nil
}

// serveIngest starts the HTTP listener with ingest storing into conn: the
// part `run --http` and `ingest` share. With m, the ingest metrics join its
// registry.
func serveIngest(c *cli.Context, cfg httpConfig, conn *stream.Conn, m *metrics.Metrics, logger *slog.Logger) (*httpServer, error) {
	var im *ingest.Metrics
	if m != nil {
		im = ingest.NewMetrics(m.Registry())
	}
	cfg.ingest.Metrics = im
	cfg.ingest.MaxAlertBytes = conn.NC.MaxPayload()
	cfg.ingest.Connected = conn.NC.IsConnected
	h := ingest.New(stream.NewPublisher(conn.JS, stream.PublisherConfig{}), cfg.ingest)
	mux := newHTTPMux(h)
	con, err := newConsole(c.Context, conn, topology(c), cfg, logger)
	if err != nil {
		return nil, err
	}
	mux.Handle("/", con)
	return startHTTP(cfg, mux, logger, im)
}

// stopHTTPOnCancel stops srv as soon as c's context is done (Ctrl-C), so
// that no new request comes in while `run` drains its workers.
func stopHTTPOnCancel(c *cli.Context, srv *httpServer, timeout time.Duration, stderr io.Writer) {
	go func() {
		<-c.Context.Done()
		if err := srv.stop(timeout); err != nil {
			fmt.Fprintf(stderr, "reactor: %v\n", err)
		}
	}()
}
