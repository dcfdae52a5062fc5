package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/urfave/cli/v2"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/reactor-alerts/reactor/cmd/reactor/internal/bench"
	"github.com/reactor-alerts/reactor/stream"
)

// catLoad groups the flags that shape the load.
const catLoad = "Load"

func benchCommand() *cli.Command {
	env := func(name string) []string { return []string{"REACTOR_BENCH_" + name} }
	return &cli.Command{
		Name:  "bench",
		Usage: "load-test reactor: throughput, publish→ack latency, redeliveries, dead letters and loss",
		Description: `Publishes --msgs alerts and processes them with the real processor and a
synthetic handler, then reports what happened, counting every id: an alert
published with a PubAck and never acked nor dead-lettered is lost, and the
command exits non-zero.

By default it starts a fresh embedded server in a temporary directory
(removed afterwards), reached in-process only; with --url it uses streams of
its own (REACTOR_BENCH_*) on that server, deleted after the run.

--raw also runs the same load through bare nats.go jetstream, as a program
using the library alone writes it, on a connection and JetStream context of
its own with the library's defaults, and prints the ratio reactor/raw: what
reactor costs over that. Before anything is measured, each side runs a
warm-up phase whose figures are discarded (--warm-up). Per alert, each side
does:

  reactor  publish: stream.Publisher.PublishBatch, as send --file and ingest
           do: a traceparent header, the alert sent with its Msg-Id, its
           PubAck awaited with a deadline, the alert sent again with the
           same id if the PubAck does not come or the send failed.
           process: processor.Processor on the group's durable consumer:
           Consume, the router, the handler under in-progress heartbeats,
           the outcome (ack; retry with backoff; dead letter), metrics.
  raw      publish: PublishMsgAsync with the Msg-Id, the PubAck awaited.
           process: Consume with its defaults on a durable consumer, the
           message handed to one of --workers goroutines that reads its
           delivery count, sleeps --work and acks. No retry, no DLQ.

The rates are per consumer group (--groups), the CPU time per settled alert
counts the bench's process (the embedded server included, an external one
not) and each group's settlement.

--work is spent in time.Sleep: a handler waiting on I/O. Failures are picked
by a hash of each alert's id: --fail-rate and --panic-rate fail the first
delivery only (the retry succeeds), --permanent-rate fails every delivery, so
the dead letters to expect are known and checked.`,
		Flags: append([]cli.Flag{
			&cli.IntFlag{Name: "msgs", Value: 100_000, Usage: "alerts to publish", EnvVars: env("MSGS"), Category: catLoad},
			&cli.IntFlag{Name: "size", Value: 256, Usage: "payload size in bytes", EnvVars: env("SIZE"), Category: catLoad},
			&cli.IntFlag{Name: "publishers", Value: 1, Usage: "publishing goroutines", EnvVars: env("PUBLISHERS"), Category: catLoad},
			&cli.Float64Flag{Name: "rate", Usage: "alerts per second in total; 0: as fast as possible", EnvVars: env("RATE"), Category: catLoad},
			&cli.BoolFlag{Name: "backlog", Usage: "publish everything first, then process the backlog", EnvVars: env("BACKLOG"), Category: catLoad},
			&cli.DurationFlag{Name: "duplicate-window", Value: stream.Topology{}.WithDefaults().DuplicateWindow, Usage: "the history's duplicate window, as reactor run --duplicate-window sets it: the server keeps every id of the window in memory", EnvVars: env("DUPLICATE_WINDOW"), Category: catLoad},
			&cli.DurationFlag{Name: "backlog-rest", Usage: "with --backlog, wait this long before processing: 11s lets the server drop the caches of the blocks it just wrote, as a process started later on the backlog finds it", EnvVars: env("BACKLOG_REST"), Category: catLoad},
			&cli.IntFlag{Name: "workers", Value: 16, Usage: "processor workers", EnvVars: env("WORKERS"), Category: catProc},
			&cli.IntFlag{Name: "groups", Value: 1, Usage: "consumer groups, each processing every alert (fan-out); rates are per group, CPU per delivered alert", EnvVars: env("GROUPS"), Category: catProc},
			&cli.IntFlag{Name: "processes", Value: 1, Usage: "processors per group, each on a connection of its own, as that many reactor run processes (they run in the bench's process)", EnvVars: env("PROCESSES"), Category: catProc},
			&cli.IntFlag{Name: "prefetch", Usage: "the processor's prefetch and raw's PullMaxMessages; 0: their defaults (500)", EnvVars: env("PREFETCH"), Category: catProc},
			&cli.IntFlag{Name: "max-ack-pending", Usage: "both sides' consumer MaxAckPending; 0: their defaults (reactor max(1000, 2*(workers+prefetch)), the server 1000)", EnvVars: env("MAX_ACK_PENDING"), Category: catProc},
			&cli.IntFlag{Name: "replicas", Value: 1, Usage: "replicas of both sides' streams, for a cluster at --url", EnvVars: env("REPLICAS"), Category: catServer},
			&cli.DurationFlag{Name: "ack-wait", Usage: "both phases' consumer AckWait; 0: the defaults (reactor's, the server's 30s for --raw)", EnvVars: env("ACK_WAIT"), Category: catProc},
			&cli.DurationFlag{Name: "work", Usage: "simulated handler latency (time.Sleep), e.g. 2ms", EnvVars: env("WORK"), Category: catProc},
			&cli.Float64Flag{Name: "fail-rate", Usage: "fraction of alerts failing their first delivery with an error (retried)", EnvVars: env("FAIL_RATE"), Category: catProc},
			&cli.Float64Flag{Name: "panic-rate", Usage: "fraction of alerts panicking on their first delivery (retried)", EnvVars: env("PANIC_RATE"), Category: catProc},
			&cli.Float64Flag{Name: "permanent-rate", Usage: "fraction of alerts failing permanently (dead-lettered)", EnvVars: env("PERMANENT_RATE"), Category: catProc},
			&cli.BoolFlag{Name: "double-ack", Usage: "wait for the server to confirm every ack", EnvVars: env("DOUBLE_ACK"), Category: catProc},
			&cli.BoolFlag{Name: "raw", Usage: "also run the load through bare nats.go jetstream and report the ratio", EnvVars: env("RAW"), Category: catProc},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of each phase's measured part (embedded server included) to `PREFIX`-<run>-<phase>.pprof, for go tool pprof; with --backlog, the publishing's to PREFIX-<run>-<phase>-publish.pprof", EnvVars: env("CPUPROFILE"), Category: catProc},
			&cli.IntFlag{Name: "warm-up", Usage: fmt.Sprintf("alerts of a warm-up phase of each side, run first and not measured; 0: min(--msgs, %d), -1: none", bench.WarmUpDefault), EnvVars: env("WARM_UP"), Category: catProc},
			&cli.IntFlag{Name: "runs", Value: 1, Usage: "repeat the comparison this many times on the same server, alternating which phase goes first, and report every run and the medians", EnvVars: env("RUNS"), Category: catProc},
			&cli.DurationFlag{Name: "drain-timeout", Value: bench.DrainTimeoutDefault, Usage: "count alerts as lost after this long without progress", EnvVars: env("DRAIN_TIMEOUT"), Category: catProc},
			&cli.BoolFlag{Name: "sync-always", Usage: "the embedded server fsyncs every write", EnvVars: env("SYNC_ALWAYS"), Category: catServer},
			jsonFlag("print the report as one JSON object"),
		}, benchConnFlags()...),
		Action: runBench,
	}
}

// benchConnFlags are the shared connection flags, with usage texts for the
// bench: its embedded server has no clients to authenticate.
func benchConnFlags() []cli.Flag {
	flags := connFlags("")
	for _, f := range flags {
		if sf, ok := f.(*cli.StringFlag); ok {
			switch sf.Name {
			case "url":
				sf.Usage = "run against this NATS server or cluster, on streams of the bench's own, instead of a fresh embedded server"
			case "user", "password", "token":
				sf.Usage = map[string]string{"user": "user name", "password": "password", "token": "auth token"}[sf.Name] + " (for --url)"
			}
		}
	}
	return flags
}

func runBench(c *cli.Context) error {
	cfg := bench.Config{
		Msgs:            c.Int("msgs"),
		Size:            c.Int("size"),
		Publishers:      c.Int("publishers"),
		Rate:            c.Float64("rate"),
		Workers:         c.Int("workers"),
		Groups:          c.Int("groups"),
		Processes:       c.Int("processes"),
		Prefetch:        c.Int("prefetch"),
		MaxAckPending:   c.Int("max-ack-pending"),
		Replicas:        c.Int("replicas"),
		Work:            c.Duration("work"),
		AckWait:         c.Duration("ack-wait"),
		FailRate:        c.Float64("fail-rate"),
		PanicRate:       c.Float64("panic-rate"),
		PermanentRate:   c.Float64("permanent-rate"),
		Raw:             c.Bool("raw"),
		SyncAlways:      c.Bool("sync-always"),
		DoubleAck:       c.Bool("double-ack"),
		Backlog:         c.Bool("backlog"),
		BacklogRest:     c.Duration("backlog-rest"),
		DuplicateWindow: c.Duration("duplicate-window"),
		DrainTimeout:    c.Duration("drain-timeout"),
		Runs:            c.Int("runs"),
		WarmUp:          c.Int("warm-up"),
		CPUProfile:      c.String("cpuprofile"),
	}
	cfg.Conn = streamConfig(c)
	if cfg.Conn.URL == "" && cfg.Conn.Auth != (stream.Auth{}) {
		return usageErrorf("credentials and TLS flags apply to --url only: the bench's embedded server is reached in-process")
	}
	if cfg.Msgs <= 0 {
		return usageErrorf("--msgs %d: must be positive", cfg.Msgs)
	}
	stdout, stderr := c.App.Writer, c.App.ErrWriter
	if stderr == nil {
		stderr = os.Stderr
	}
	var bars *progressBars
	if !c.Bool("json") && isTerminal(stderr) {
		bars = newProgressBars(c, stderr)
		cfg.OnProgress = bars.update
	}
	rep, err := bench.Run(c.Context, cfg)
	if errors.Is(err, bench.ErrInvalidConfig) {
		err = &exitError{code: exitUsage, err: err}
	}
	if bars != nil {
		bars.wait()
	}
	if rep == nil {
		return err
	}
	if c.Bool("json") {
		if werr := json.NewEncoder(stdout).Encode(rep); werr != nil {
			return werr
		}
	} else if werr := rep.WriteTable(stdout); werr != nil {
		return werr
	}
	if err != nil {
		return err
	}
	if lost := rep.TotalLost(); lost > 0 {
		return &exitError{code: exitFailure, err: fmt.Errorf("bench: %d alerts lost", lost)}
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBars shows, per phase, a bar of published and one of settled
// alerts.
type progressBars struct {
	p    *mpb.Progress
	mu   sync.Mutex
	bars map[string][2]*mpb.Bar
}

func newProgressBars(c *cli.Context, w io.Writer) *progressBars {
	return &progressBars{
		p:    mpb.NewWithContext(c.Context, mpb.WithOutput(w), mpb.WithWidth(40)),
		bars: make(map[string][2]*mpb.Bar),
	}
}

func (b *progressBars) update(pr bench.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pair, ok := b.bars[pr.Phase]
	if !ok {
		bar := func(what string) *mpb.Bar {
			return b.p.AddBar(int64(pr.Msgs),
				mpb.PrependDecorators(decor.Name(fmt.Sprintf("%-8s %-10s", pr.Phase, what)), decor.CountersNoUnit("%d / %d", decor.WCSyncWidth)),
				mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace)))
		}
		pair = [2]*mpb.Bar{bar("published"), bar("settled")}
		b.bars[pr.Phase] = pair
	}
	pair[0].SetCurrent(int64(pr.Published))
	pair[1].SetCurrent(int64(pr.Settled))
	if pr.Done {
		// Totals become what was actually published: a bar that cannot
		// reach 100% would keep Wait from returning.
		pair[0].SetTotal(int64(pr.Published), true)
		pair[1].SetTotal(int64(pr.Settled), true)
	}
}

func (b *progressBars) wait() {
	b.mu.Lock()
	for _, pair := range b.bars {
		for _, bar := range pair {
			if !bar.Completed() {
				bar.Abort(false)
			}
		}
	}
	b.mu.Unlock()
	b.p.Wait()
}
