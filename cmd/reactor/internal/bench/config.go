// Package bench is reactor's load-test engine, the library behind
// `reactor bench`. It publishes alerts to JetStream while the real
// processor.Processor and processor.Router handle them with a synthetic
// handler, and reports what happened: publish and processing rates,
// publish→ack latency, redeliveries, dead letters, memory, and, above all,
// whether every published alert was settled (lost and duplicate ids).
//
// By default it runs against a fresh embedded server in a temporary
// directory, reached in-process only and removed afterwards. Against an
// external server (Config.Conn.URL) it creates streams with names of its own
// (REACTOR_BENCH_<run>_...) on subjects of its own, and deletes them after
// the run, so it never touches the streams of a real deployment.
//
// Failure injection is deterministic: a hash of each alert's index decides
// whether it fails, panics or fails permanently, so the number of dead
// letters to expect is known before the run and checked after it.
package bench

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/reactor-alerts/reactor/stream"
)

// Config describes one load test. The zero value is valid: 100,000 alerts of
// 256 bytes, published as fast as possible, handled by 16 workers with a
// no-op handler, on a fresh embedded server.
type Config struct {
	// Conn says where JetStream lives. With an empty URL a fresh embedded
	// server is started in a temporary directory (stream/embedded)
	// without a client listener, and removed afterwards.
	Conn stream.Config
	// Msgs is the number of alerts to publish. Defaults to 100,000.
	Msgs int
	// Size is the payload size in bytes. Defaults to 256.
	Size int
	// Publishers is the number of goroutines publishing. Defaults to 1.
	Publishers int
	// Rate is the total publish rate in alerts per second. Defaults to 0:
	// as fast as the server takes them.
	Rate float64
	// Workers is the processor's worker count, per group and process.
	// Defaults to 16.
	Workers int
	// Groups is the number of consumer groups that each process every
	// alert (fan-out): the rates are per group, the CPU time per delivered
	// alert. Defaults to 1.
	Groups int
	// Processes is the number of processors in each group, each on a
	// connection of its own (the raw side: as many Consume calls on
	// connections of their own), as that many processes of one group
	// would be; they run in the bench's process. Defaults to 1.
	Processes int
	// Prefetch is the processor's Prefetch and the raw side's
	// PullMaxMessages. Defaults to 0: their own defaults (500 both).
	Prefetch int
	// MaxAckPending is both sides' consumer MaxAckPending. Defaults to 0:
	// the processor's default, max(1000, 2*(Workers+Prefetch)), and the
	// server's, 1000.
	MaxAckPending int
	// Replicas is the replica count of both sides' streams, for a cluster
	// at Conn.URL. Defaults to 1.
	Replicas int
	// Work is the simulated handler latency, spent in time.Sleep: it models
	// a handler waiting on I/O (a webhook, a command), which holds a worker
	// but not a CPU. Defaults to 0: a no-op handler.
	Work time.Duration
	// AckWait is both phases' consumer AckWait. Defaults to 0: the
	// processor's default (processor.AckWaitDefault) for the reactor phase,
	// the server's (30s) for the raw one.
	AckWait time.Duration
	// FailRate is the fraction of alerts whose handler returns a plain
	// error on the first delivery: they are retried, then succeed.
	FailRate float64
	// PanicRate is the fraction of alerts whose handler panics on the first
	// delivery: they are retried, then succeed.
	PanicRate float64
	// PermanentRate is the fraction of alerts whose handler returns a
	// permanent error on every delivery: they are dead-lettered.
	PermanentRate float64
	// Raw also runs the same load through bare nats.go jetstream, as a user
	// writes it with the library alone, on a connection and JetStream
	// context of its own with the library's defaults (one Limits stream, a
	// durable consumer, PublishMsgAsync with a Msg-Id, Consume with its
	// defaults, Workers goroutines that ack), and reports the ratio.
	Raw bool
	// Runs repeats the comparison, each run a reactor phase and a raw one
	// on fresh streams of the same server, alternating which goes first;
	// the report gives every run's figures and their medians. Defaults
	// to 1.
	Runs int
	// WarmUp is the number of alerts of a phase of each side that runs
	// before anything is measured and whose figures are discarded, so that
	// a single run measures neither side cold. Defaults to
	// min(Msgs, WarmUpDefault); negative: no warm-up.
	WarmUp int
	// SyncAlways makes the embedded server fsync every write. Only for the
	// embedded server: an external server's sync policy is its own.
	SyncAlways bool
	// DoubleAck waits for the server to confirm every ack.
	DoubleAck bool
	// Backlog publishes every alert before processing starts, and measures
	// processing from the moment the workers start. Defaults to false:
	// publishing and processing overlap.
	Backlog bool
	// BacklogRest is how long a stored backlog rests before processing
	// starts (Backlog only). Right after publishing, the server still holds
	// the blocks it wrote in its cache (nats-server drops a block's cache
	// 10s after its last use): hundreds of MiB for a million alerts, which
	// a process started later on the same backlog does not carry. 11s
	// measures processing as that process would see it. Defaults to 0.
	BacklogRest time.Duration
	// DuplicateWindow is the history's duplicate window, as `reactor run
	// --duplicate-window` sets it: the server keeps every alert id of the
	// window in memory. Defaults to the topology's default (2 minutes).
	DuplicateWindow time.Duration
	// DrainTimeout is how long the run waits without any alert being
	// settled, once publishing is done, before it counts the unsettled ones
	// as lost. Defaults to DrainTimeoutDefault.
	DrainTimeout time.Duration
	// Seed varies which alerts the failure injection picks. Defaults to 1.
	Seed uint64
	// CPUProfile, if set, writes a CPU profile (runtime/pprof, embedded
	// server included) of the measured part of each phase to
	// CPUProfile-<run>-<phase>.pprof: publishing and processing, or only
	// processing with Backlog, which writes the publishing's to
	// CPUProfile-<run>-<phase>-publish.pprof.
	CPUProfile string
	// OnProgress, if set, is called every ProgressInterval while a phase
	// runs, and once at its end.
	OnProgress func(Progress)
	// ProgressInterval defaults to 200ms.
	ProgressInterval time.Duration
	// Logger receives the processor's and the server's logs. Defaults to
	// discarding them.
	Logger *slog.Logger
}

// Progress is a snapshot of a running phase.
type Progress struct {
	Phase     string // "reactor" or "raw", then " warm-up" or the run number with Runs above 1
	Msgs      int
	Published int // with a PubAck
	Settled   int // acked or dead-lettered, each id once
	Done      bool
}

// WarmUpDefault bounds Config.WarmUp's default.
const WarmUpDefault = 20_000

// DrainTimeoutDefault is longer than any AckWait the bench is run with
// (the processor's default is processor.AckWaitDefault), so an alert whose
// ack was lost is redelivered in time.
const DrainTimeoutDefault = 60 * time.Second

// Processor settings of the bench: MaxDeliver leaves room for the one
// injected failure per alert and for redeliveries after a lost ack; the tiny
// backoff keeps retries from dominating the run.
const (
	benchMaxDeliver  = 10
	benchBackoffBase = time.Millisecond
	benchBackoffMax  = 10 * time.Millisecond
	benchGroup       = "bench"
)

func (c Config) withDefaults() Config {
	if c.Msgs == 0 {
		c.Msgs = 100_000
	}
	if c.Size == 0 {
		c.Size = 256
	}
	if c.Publishers <= 0 {
		c.Publishers = 1
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.Groups <= 0 {
		c.Groups = 1
	}
	if c.Processes <= 0 {
		c.Processes = 1
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = stream.Topology{}.WithDefaults().DuplicateWindow
	}
	if c.Runs <= 0 {
		c.Runs = 1
	}
	if c.WarmUp == 0 {
		c.WarmUp = min(c.Msgs, WarmUpDefault)
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DrainTimeoutDefault
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 200 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// ErrInvalidConfig wraps the reasons a Config is refused.
var ErrInvalidConfig = errors.New("bench: invalid config")

func (c Config) validate() error {
	var errs []error
	if c.Msgs < 0 {
		errs = append(errs, fmt.Errorf("msgs %d: must be positive", c.Msgs))
	}
	if c.Size < 0 || c.Size > 1<<20 {
		errs = append(errs, fmt.Errorf("size %d: must be between 0 and 1 MiB", c.Size))
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("rate %g: must not be negative", c.Rate))
	}
	if c.DuplicateWindow < 0 {
		errs = append(errs, fmt.Errorf("duplicate window %s: must not be negative", c.DuplicateWindow))
	}
	if c.BacklogRest < 0 || (c.BacklogRest > 0 && !c.Backlog) {
		errs = append(errs, fmt.Errorf("backlog rest %s: only for a backlog, and not negative", c.BacklogRest))
	}
	if c.Prefetch < 0 || c.MaxAckPending < 0 {
		errs = append(errs, fmt.Errorf("prefetch %d, max ack pending %d: must not be negative", c.Prefetch, c.MaxAckPending))
	}
	if c.Replicas > 1 && c.Conn.URL == "" {
		errs = append(errs, fmt.Errorf("replicas %d: only for a cluster at a URL; the embedded server is one server", c.Replicas))
	}
	if c.AckWait < 0 {
		errs = append(errs, fmt.Errorf("ack wait %s: must not be negative", c.AckWait))
	}
	if c.Work < 0 {
		errs = append(errs, fmt.Errorf("work %s: must not be negative", c.Work))
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"fail rate", c.FailRate}, {"panic rate", c.PanicRate}, {"permanent rate", c.PermanentRate}} {
		if r.v < 0 || r.v > 1 {
			errs = append(errs, fmt.Errorf("%s %g: must be between 0 and 1", r.name, r.v))
		}
	}
	if sum := c.FailRate + c.PanicRate + c.PermanentRate; sum > 1 {
		errs = append(errs, fmt.Errorf("fail, panic and permanent rates add up to %g: more than 1", sum))
	}
	if c.SyncAlways && c.Conn.URL != "" {
		errs = append(errs, errors.New("sync-always applies to the embedded server only: an external server's sync policy is set in its own config"))
	}
	if c.CPUProfile != "" {
		if fi, err := os.Stat(filepath.Dir(c.CPUProfile)); err != nil || !fi.IsDir() {
			errs = append(errs, fmt.Errorf("cpu profile %q: its directory must exist", c.CPUProfile))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}
