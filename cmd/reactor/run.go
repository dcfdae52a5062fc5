package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/processor/metrics"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/embedded"
)

// runWorkersDefault is run's worker count. The processor's own default
// (processor.WorkersDefault) suits a library user; the command line serves a
// team whose handlers mostly wait on commands and webhooks.
const runWorkersDefault = 16

// dataDirDefault is the embedded server's store, relative to the working
// directory.
const dataDirDefault = "./reactor-data"

func runCommand() *cli.Command {
	env := func(name string) []string { return []string{"REACTOR_" + name} }
	flags := []cli.Flag{
		&cli.StringFlag{Name: "listen", Value: net.JoinHostPort(embedded.HostDefault, strconv.Itoa(embedded.PortDefault)), Usage: "host:port of the embedded server's client listener (port 0 picks a free one); a non-loopback host needs --user/--password or --token", EnvVars: env("LISTEN"), Category: catServer},
		&cli.StringFlag{Name: "data-dir", Value: dataDirDefault, Usage: "directory of the embedded server's JetStream store", EnvVars: env("DATA_DIR"), Category: catServer, TakesFile: true},
		&cli.BoolFlag{Name: "sync-always", Usage: "fsync every write before acknowledging it; without it nats-server syncs every 2 minutes, and a power loss can undo acknowledged writes", EnvVars: env("SYNC_ALWAYS"), Category: catServer},
	}
	flags = append(flags, connFlags("")...)
	flags = append(flags, streamFlags()...)
	flags = append(flags,
		&cli.IntFlag{Name: "replicas", Value: stream.ReplicasDefault, Usage: "replicas of each stream on a cluster (1, 3 or 5)", EnvVars: env("REPLICAS"), Category: catStreams},
		&cli.DurationFlag{Name: "history-max-age", Value: stream.MaxAgeDefault, Usage: "how long the alert stream keeps alerts: the replay horizon, and how long a group has to settle one (run warns past half)", EnvVars: env("HISTORY_MAX_AGE"), Category: catStreams},
		&cli.Int64Flag{Name: "max-bytes", Usage: "size limit of the alert stream in bytes, 0 for none; once full, new alerts are refused (publishers get the error), never old ones dropped", EnvVars: env("MAX_BYTES"), Category: catStreams},
		&cli.DurationFlag{Name: "duplicate-window", Value: stream.DuplicateWindowDefault, Usage: "how long the history remembers an alert id, storing a re-sent copy only once; the server keeps every id of the window in memory, so a long window at a high rate costs memory", EnvVars: env("DUPLICATE_WINDOW"), Category: catStreams},
		&cli.StringFlag{Name: "config", Usage: "handlers config file (YAML); default: print every alert", EnvVars: env("CONFIG"), Category: catProc, TakesFile: true},
		&cli.IntFlag{Name: "workers", Value: runWorkersDefault, Usage: fmt.Sprintf("alerts handled at once by this process (the processor library defaults to %d; the command line to %d, for handlers that wait on commands and webhooks)", processor.WorkersDefault, runWorkersDefault), EnvVars: env("WORKERS"), Category: catProc},
		&cli.StringFlag{Name: "group", Value: processor.GroupDefault, Usage: "consumer group: processes of one group share the alerts", EnvVars: env("GROUP"), Category: catProc},
		&cli.StringFlag{Name: "start", Value: stream.StartDefault, Usage: "where a new group starts: all (every alert kept), new (the next alert), a duration back (24h), an RFC 3339 time, or seq:N; auto is all for the first group of the stream, new for a group added later; an existing group keeps its position", EnvVars: env("START"), Category: catProc},
		&cli.StringSliceFlag{Name: "filter", Usage: "handle only alerts on these subjects (repeatable, wildcards * and >); default: all", EnvVars: env("FILTER"), Category: catProc},
		&cli.DurationFlag{Name: "ack-wait", Value: processor.AckWaitDefault, Usage: "redeliver an alert whose process went silent this long: how soon the alerts of a crashed process are handled again (in-progress marks keep those of a live process, running or waiting)", EnvVars: env("ACK_WAIT"), Category: catProc},
		&cli.IntFlag{Name: "max-deliver", Value: processor.MaxDeliverDefault, Usage: "deliveries of a failing alert before it is dead-lettered", EnvVars: env("MAX_DELIVER"), Category: catProc},
		&cli.DurationFlag{Name: "backoff-base", Value: processor.BackoffBaseDefault, Usage: "first retry delay; doubles per delivery, with jitter", EnvVars: env("BACKOFF_BASE"), Category: catProc},
		&cli.DurationFlag{Name: "backoff-max", Value: processor.BackoffMaxDefault, Usage: "longest retry delay", EnvVars: env("BACKOFF_MAX"), Category: catProc},
		&cli.DurationFlag{Name: "shutdown-timeout", Value: processor.ShutdownTimeoutDefault, Usage: "on Ctrl-C, how long running handlers may finish before they are cancelled", EnvVars: env("SHUTDOWN_TIMEOUT"), Category: catProc},
	)
	flags = append(flags, logFlags()...)
	flags = append(flags, &cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics on host:port (/metrics, /healthz, /readyz), e.g. 127.0.0.1:9464; default: off", EnvVars: env("METRICS"), Category: catOutput})
	flags = append(flags, httpFlags("")...)
	flags = append(flags, &cli.StringFlag{Name: "public-url", Usage: "the web console's URL as people reach it, e.g. https://reactor.example.com: Slack and PagerDuty messages link to the alert's page there, and action templates see it as .ConsoleURL; default: no links", EnvVars: env("PUBLIC_URL"), Category: catHTTP})
	return &cli.Command{
		Name:      "run",
		Usage:     "process alerts with the configured handlers",
		UsageText: "reactor run [options]",
		Description: `Starts an embedded NATS server (store in --data-dir, clients on --listen) or
connects to --url, creates the streams if needed, and handles alerts until
Ctrl-C or SIGTERM. Alerts printed by the print handler go to stdout, logs to
stderr. Ctrl-C drains: no new alerts are taken, running handlers get
--shutdown-timeout to finish. A second Ctrl-C exits at once (status 130);
alerts in flight are redelivered after --ack-wait. Exec actions never outlive
run: their commands are killed with it however it ends (on Linux).

Examples:
   reactor run                                  # embedded server on 127.0.0.1:4222, ./reactor-data
   reactor run --config reactor.yaml --workers 32
   reactor run --listen 0.0.0.0:4222 --user ops --password "$PW"
   reactor run --url nats://nats-1:4222,nats://nats-2:4222 --creds ops.creds --replicas 3
   reactor run --group pager --filter 'alerts.db.>'      # a second group: each gets every alert it filters
   reactor run --group audit --start 24h                # a new group that starts with the last day's alerts
   reactor run --http 127.0.0.1:8080                    # also receive Alertmanager/Grafana webhooks`,
		Flags:  flags,
		Action: runAction,
	}
}

func runAction(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("run takes no arguments, got %q: see 'reactor run --help'", c.Args().First())
	}
	rc, err := newRunConfig(c)
	if err != nil {
		return err
	}
	conn, err := rc.open(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	return rc.serve(c, conn)
}

// runConfig is what run's flags ask for: the handlers, the processor, where
// JetStream lives and the listeners.
type runConfig struct {
	logger    *slog.Logger
	handlers  handlers.Config
	publicURL string // the console's, for links; empty: none
	processor processor.Config
	http      httpConfig // addr empty: no HTTP listener
	metrics   string     // empty: no metrics listener
	stream    stream.Config
	embedded  *embedded.Config // nil with --url
	where     string           // for the ready line
}

// newRunConfig reads and checks run's flags.
func newRunConfig(c *cli.Context) (runConfig, error) {
	rc := runConfig{metrics: c.String("metrics")}
	logger, level, err := newLogger(c, c.App.ErrWriter)
	if err != nil {
		return rc, err
	}
	rc.logger = logger
	if rc.handlers, err = loadHandlersConfig(c); err != nil {
		return rc, err
	}
	if rc.publicURL, err = publicURL(c.String("public-url")); err != nil {
		return rc, err
	}
	topo := topology(c)
	topo.Replicas = c.Int("replicas")
	topo.MaxAge = c.Duration("history-max-age")
	topo.DuplicateWindow = c.Duration("duplicate-window")
	topo.MaxBytes = c.Int64("max-bytes")
	if topo.DuplicateWindow <= 0 || topo.MaxAge <= 0 || topo.DuplicateWindow > topo.MaxAge {
		return rc, usageErrorf("--duplicate-window and --history-max-age must be positive, the window no longer than the history")
	}
	start, err := stream.ParseStart(c.String("start"), time.Now())
	if err != nil {
		return rc, usageErrorf("bad --start: %v", err)
	}
	rc.processor = processor.Config{
		Topology:        topo,
		Group:           c.String("group"),
		FilterSubjects:  c.StringSlice("filter"),
		Start:           start,
		Workers:         c.Int("workers"),
		AckWait:         c.Duration("ack-wait"),
		MaxDeliver:      c.Int("max-deliver"),
		BackoffBase:     c.Duration("backoff-base"),
		BackoffMax:      c.Duration("backoff-max"),
		ShutdownTimeout: c.Duration("shutdown-timeout"),
		// With --sync-always, wait for the server to confirm each ack:
		// fire-and-forget acks can queue on the server up to the group's
		// MaxAckPending, and a crash repeats every one of them. Confirmed,
		// a crash repeats the alerts in the workers and those acked since
		// nats-server last wrote the consumer's state (TestCrashLoop;
		// docs/operations.md).
		DoubleAck: c.Bool("sync-always"),
		Logger:    logger,
		// reactor run exports no traces: no span per alert, and handlers'
		// contexts still carry the alert's trace context.
		TracerProvider: noop.NewTracerProvider(),
	}
	if rc.processor.Workers < 1 || rc.processor.MaxDeliver < 1 {
		return rc, usageErrorf("--workers and --max-deliver must be at least 1")
	}
	if c.String("http") != "" {
		if rc.http, err = httpConfigFrom(c, logger); err != nil {
			return rc, err
		}
	}
	rc.stream, rc.embedded, rc.where, err = runStreamConfig(c, logger, level)
	return rc, err
}

// open starts the embedded server or connects to --url.
func (rc *runConfig) open(c *cli.Context) (*stream.Conn, error) {
	var conn *stream.Conn
	var err error
	if rc.embedded != nil {
		conn, err = embedded.Open(c.Context, *rc.embedded, rc.stream)
	} else {
		conn, err = stream.Open(c.Context, rc.stream)
	}
	switch {
	case errors.Is(err, embedded.ErrInsecureListen):
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("refusing to listen on %s without auth", c.String("listen")),
			hint: "set --user and --password (or --token) to require it, or listen on 127.0.0.1"}
	case errors.Is(err, nats.ErrAuthorization):
		return nil, authError(rc.stream)
	case err != nil:
		return nil, err
	}
	if srv, ok := conn.InProcess.(*embedded.Server); ok {
		rc.where = fmt.Sprintf("NATS on %s (embedded, data in %s)", srv.ClientURL(), srv.DataDir())
	}
	return conn, nil
}

// serve handles alerts on conn, with the listeners asked for, until Ctrl-C
// or SIGTERM; then it drains.
func (rc *runConfig) serve(c *cli.Context, conn *stream.Conn) error {
	stderr := c.App.ErrWriter
	deps := handlers.Deps{Out: c.App.Writer, Logger: rc.logger, ConsoleURL: rc.publicURL}
	var m *metrics.Metrics
	if rc.metrics != "" {
		m = metrics.New(prometheus.NewRegistry())
		rc.processor.OnOutcome = m.Observe
		deps.OnRun = func(r handlers.Run) { m.ObserveRun(r.Entry, r.Action, r.Outcome, r.DurationSeconds) }
	}
	rules, err := handlers.NewRules(rc.handlers, deps)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	if m != nil {
		m.Registry().MustRegister(ruleCountsCollector{rules})
	}
	p, err := processor.New(conn.JS, rules, rc.processor)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	stopForce := forceOnSecondSignal(stderr, p.Config().AckWait)
	defer stopForce()
	// The processor's context is its own: Ctrl-C is said first, then
	// passed on, so that the drain's log lines come after it.
	ctx, cancel := context.WithCancel(context.WithoutCancel(c.Context))
	defer cancel()
	if m != nil {
		stopMetrics, err := serveMetrics(ctx, rc.metrics, m, p, conn, p.Config().Topology, stderr)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	if rc.http.addr != "" {
		rc.http.rules, rc.http.group = rules, p.Config().Group
		srv, err := serveIngest(c, rc.http, conn, m, rc.logger)
		if err != nil {
			return err
		}
		// Stopped before conn closes (deferred later, runs first), and at
		// Ctrl-C already, while the workers drain.
		defer srv.stop(rc.processor.ShutdownTimeout)
		stopHTTPOnCancel(c, srv, rc.processor.ShutdownTimeout, stderr)
		srv.announce(stderr)
	}
	go func() {
		if waitReady(ctx, p) {
			fmt.Fprintf(stderr, "reactor: ready: %s; handling %s with %d workers (group %s); Ctrl-C to stop\n",
				rc.where, strings.Join(rules.Entries(), ", "), p.Config().Workers, p.Config().Group)
		}
	}()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case err = <-done:
	case <-c.Context.Done():
		fmt.Fprintf(stderr, "reactor: stopping: draining %d in-flight alerts (up to %s; Ctrl-C again to force)\n",
			p.InFlight(), p.Config().ShutdownTimeout)
		cancel()
		err = <-done
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, "reactor: stopped")
	return nil
}

// runStreamConfig is where run's JetStream lives: --url, or the embedded
// server of --listen and --data-dir (ecfg, nil with --url). It also says so,
// for the ready line.
func runStreamConfig(c *cli.Context, logger *slog.Logger, level slog.Level) (cfg stream.Config, ecfg *embedded.Config, where string, err error) {
	cfg = streamConfig(c)
	cfg.Name = "reactor run"
	cfg.Logger = logger
	if cfg.URL != "" {
		return cfg, nil, "connected to " + cfg.String(), nil
	}
	for _, f := range []string{"creds", "nkey", "tlscert", "tlskey", "tlsca"} {
		if c.String(f) != "" {
			return cfg, nil, "", usageErrorf("--%s is for an external server: give --url too (the embedded server takes --user/--password or --token)", f)
		}
	}
	// One without the other would leave the server open (nats-server
	// ignores a password without a user) or fail later with less to say.
	if (cfg.Auth.User == "") != (cfg.Auth.Password == "") {
		return cfg, nil, "", usageErrorf("--user and --password go together: the embedded server requires both from its clients (or --token)")
	}
	host, portText, err := net.SplitHostPort(c.String("listen"))
	if err != nil {
		return cfg, nil, "", usageErrorf("bad --listen %q: want host:port, e.g. 127.0.0.1:4222", c.String("listen"))
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return cfg, nil, "", usageErrorf("bad port in --listen %q", c.String("listen"))
	}
	// A busy port would only show as a start-up timeout: probe it first,
	// unless the server will refuse the address anyway (no auth on a
	// non-loopback host).
	ip := net.ParseIP(host)
	probe := host == "localhost" || (ip != nil && ip.IsLoopback()) || cfg.Auth.User != "" || cfg.Auth.Token != ""
	switch {
	case port == 0:
		port = -1 // the server picks a free port; the ready line says which
	case probe:
		l, err := net.Listen("tcp", c.String("listen"))
		if err != nil {
			return cfg, nil, "", withHint(fmt.Errorf("cannot listen on %s: %w", c.String("listen"), err),
				"is another `reactor run` or NATS server running? choose another --listen, or connect to it with --url")
		}
		_ = l.Close()
	}
	// The server's notices (its start-up banner) would drown the alerts;
	// they show with --log-level debug.
	serverLogger := logger
	if level > slog.LevelDebug {
		serverLogger = slog.New(levelFloor{logger.Handler(), slog.LevelWarn})
	}
	ecfg = &embedded.Config{
		DataDir:    c.String("data-dir"),
		Host:       host,
		Port:       port,
		SyncAlways: c.Bool("sync-always"),
		User:       cfg.Auth.User,
		Password:   cfg.Auth.Password,
		Token:      cfg.Auth.Token,
		Logger:     serverLogger,
	}
	cfg.Auth = stream.Auth{}
	return cfg, ecfg, "", nil
}

// serveMetrics serves m on addr until ctx is done or the returned function
// is called, which waits for the listener to close.
func serveMetrics(ctx context.Context, addr string, m *metrics.Metrics, p *processor.Processor, conn *stream.Conn, topo stream.Topology, stderr io.Writer) (stop func(), err error) {
	m.WatchProcessor(p)
	m.WatchStreams(conn.JS, topo)
	ln, err := metrics.Listen(addr)
	if err != nil {
		return nil, withHint(err, "choose another --metrics address")
	}
	fmt.Fprintf(stderr, "reactor: metrics on http://%s/metrics\n", ln.Addr())
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := metrics.Serve(ctx, ln, m, p.Ready); err != nil {
			fmt.Fprintf(stderr, "reactor: %v\n", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

// loadHandlersConfig reads --config; without it, the default (print every
// alert).
func loadHandlersConfig(c *cli.Context) (handlers.Config, error) {
	var cfg handlers.Config
	if path := c.String("config"); path != "" {
		var err error
		if cfg, err = handlers.LoadConfig(path); err != nil {
			return cfg, &exitError{code: exitUsage, err: err}
		}
	}
	return cfg, nil
}

// publicURL checks --public-url: empty, or an absolute http(s) URL.
func publicURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", usageErrorf("bad --public-url %q: want the console's absolute http:// or https:// URL, e.g. https://reactor.example.com", raw)
	}
	return raw, nil
}

// waitReady waits until p is bound to its consumer, or ctx is done.
func waitReady(ctx context.Context, p *processor.Processor) bool {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !p.Ready() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// forceOnSecondSignal makes the second SIGINT or SIGTERM exit at once. The
// first one also reaches main's signal.NotifyContext, which starts the
// graceful shutdown. The returned function stops watching.
func forceOnSecondSignal(stderr io.Writer, ackWait time.Duration) (stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for seen := 0; ; {
			select {
			case <-done:
				return
			case <-sigs:
				if seen++; seen >= 2 {
					fmt.Fprintf(stderr, "reactor: forced exit: alerts in flight are redelivered after the ack wait (%s)\n", ackWait)
					os.Exit(exitInterrupted)
				}
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

// levelFloor drops records below a level, whatever the wrapped handler's.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelFloor) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelFloor{h.Handler.WithAttrs(attrs), h.min}
}

func (h levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{h.Handler.WithGroup(name), h.min}
}
