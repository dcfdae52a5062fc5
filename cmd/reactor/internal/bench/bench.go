package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/embedded"
)

// Run executes the load test cfg describes: the reactor phase, then the raw
// phase if asked. Lost or duplicate alerts are reported, not returned as an
// error; the error is for a run that could not be carried out (no server, a
// refused topology, ctx cancelled). With an error, the report is nil if
// nothing was measured, else it holds what was.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	conn, cleanup, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	sides, closeSides, err := openSides(ctx, cfg, conn)
	if err != nil {
		return nil, err
	}
	defer closeSides()
	h := &handover{}
	defer h.done()

	rep := &Report{Settings: settings(cfg)}
	id := runID()
	if err := warmUp(ctx, sides, h, cfg, id+"w"); err != nil {
		return nil, err
	}
	var reactors, raws []Phase
	for i := range cfg.Runs {
		// The phases alternate which goes first, so that neither gains
		// from its place (a warmer cache, a fresher store).
		label := ""
		if cfg.Runs > 1 {
			label = fmt.Sprintf(" %d", i+1)
		}
		reactor, raw, err := runOnce(ctx, sides, h, cfg, fmt.Sprintf("%s%d", id, i), label, i%2 == 1)
		if reactor.Msgs > 0 && (!cfg.Raw || raw.Msgs > 0) {
			reactors, raws = append(reactors, reactor), append(raws, raw)
			rep.Runs = append(rep.Runs, summarize(reactor, raw, cfg.Raw))
		}
		if err != nil {
			if len(reactors) == 0 {
				if reactor.Msgs == 0 {
					return nil, err // nothing measured
				}
				rep.Phase = reactor
			} else {
				rep.pick(reactors, raws, cfg.Raw)
			}
			return rep, err
		}
	}
	rep.pick(reactors, raws, cfg.Raw)
	return rep, nil
}

// warmUp runs a phase of each side whose figures are discarded, with
// cfg.WarmUp alerts, reactor's first: the first run then measures neither
// side on a cold server, store, connection and Go heap.
func warmUp(ctx context.Context, js sideConns, h *handover, cfg Config, run string) error {
	if cfg.WarmUp <= 0 {
		return nil
	}
	w := cfg
	w.Msgs, w.BacklogRest, w.CPUProfile = cfg.WarmUp, 0, ""
	reactor, raw, err := runOnce(ctx, js, h, w, run, " warm-up", false)
	if err != nil {
		return fmt.Errorf("bench: warm-up: %w", err)
	}
	if lost := reactor.Lost + raw.Lost; lost > 0 {
		return fmt.Errorf("bench: warm-up: %d alerts lost", lost)
	}
	return nil
}

// runOnce runs the reactor phase, then the raw one if asked (the other
// way round with rawFirst).
func runOnce(ctx context.Context, js sideConns, h *handover, cfg Config, run, label string, rawFirst bool) (reactor, raw Phase, err error) {
	if cfg.Raw && rawFirst {
		if raw, err = runPhase(ctx, js, h, cfg, run, "raw", "raw"+label); err != nil {
			return reactor, raw, err
		}
	}
	if reactor, err = runPhase(ctx, js, h, cfg, run, "reactor", "reactor"+label); err != nil {
		return reactor, raw, err
	}
	if cfg.Raw && !rawFirst {
		raw, err = runPhase(ctx, js, h, cfg, run, "raw", "raw"+label)
	}
	return reactor, raw, err
}

// connect opens cfg.Conn, starting a fresh embedded server in a temporary
// directory when there is no URL. cleanup closes the connection, stops the
// server and removes its directory.
func connect(ctx context.Context, cfg Config) (*stream.Conn, func(), error) {
	sc := cfg.Conn
	if sc.Name == "" {
		sc.Name = "reactor-bench"
	}
	if sc.Logger == nil {
		sc.Logger = cfg.Logger
	}
	dir := ""
	if sc.URL == "" {
		var err error
		if dir, err = os.MkdirTemp("", "reactor-bench-"); err != nil {
			return nil, nil, fmt.Errorf("bench: temp dir: %w", err)
		}
	}
	conn, err := open(ctx, sc, embedded.Config{DataDir: dir, DontListen: true, SyncAlways: cfg.SyncAlways})
	if err != nil {
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	return conn, func() {
		_ = conn.Close()
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
	}, nil
}

// runPhase publishes cfg.Msgs alerts on streams of its own and processes them
// with the reactor processor or the raw baseline; h deletes the streams once
// the next phase has created its own. label names the phase in progress
// reports.
func runPhase(ctx context.Context, js sideConns, h *handover, cfg Config, run, name, label string) (Phase, error) {
	var ph Phase
	tag := strings.ToUpper("REACTOR_BENCH_" + run + "_" + name)
	subjects := "reactor_bench." + run + "." + name
	t := newTracker(run+"-"+name+"-", cfg.Msgs, cfg.Groups)
	var sd side
	if name == "raw" {
		sd = &rawSide{js: js.raw, cfg: cfg, name: tag, subject: subjects + ".>", t: t}
	} else {
		topo := stream.Topology{
			Replicas:  cfg.Replicas,
			Alerts:    tag,
			Subjects:  []string{subjects + ".>"},
			DLQ:       tag + "_DLQ",
			DLQPrefix: "reactor_bench_dlq." + run + "." + name,
			// Phases overlap while h hands over: no subject may be shared.
			RedrivePrefix: "reactor_bench_redrive." + run + "." + name,

			DuplicateWindow: cfg.DuplicateWindow,
		}.WithDefaults()
		sd = newReactorSide(js.reactor, js.pub, cfg, topo, t, subjects+".>")
	}
	err := sd.setup(ctx)
	h.next(sd.cleanup)
	if err != nil {
		return ph, err
	}

	// Each phase starts from a collected heap: the previous phase's
	// garbage gone, and the collector's goal set by what is live now. Left
	// as it is, a phase would inherit the previous one's goal, twice its
	// large live heap (its tracker, the server's caches), and run its first
	// seconds without a collection, while the phase after a small one (the
	// warm-up) collects from the start: on two cores a collection's marking
	// takes one of them, and those stalls decide the latency's tail.
	runtime.GC()
	mem := startMemSampler(memSampleEvery)
	stopProgress := reportProgress(cfg, label, t)
	started := false
	stopSide := func() error {
		if !started {
			return nil
		}
		started = false
		return sd.stop()
	}
	defer func() { _ = stopSide() }()
	fail := func(err error) (Phase, error) {
		stopProgress()
		mem.Stop()
		return ph, err
	}
	startSide := func() error {
		if err := sd.start(ctx); err != nil {
			return err
		}
		started = true
		if cfg.Backlog {
			// Its clock runs already; and with a backlog a pull is
			// answered at once, so none may be seen waiting.
			return nil
		}
		return waitPulling(ctx, sd)
	}
	if !cfg.Backlog {
		if err := startSide(); err != nil {
			return fail(err)
		}
	}
	profileName := name
	if cfg.Backlog {
		profileName += "-publish"
	}
	profile := startProfile(cfg, run, profileName)
	defer func() { _ = profile() }()
	cpu := cpuTime()
	pubTime := publish(ctx, sd, cfg, t, subjects+".alert")
	begin := time.Unix(0, t.firstPublish.Load())
	var pubRSS, pubHeap uint64
	if cfg.Backlog {
		if n := t.published.Load(); n > 0 {
			ph.PublishCPUPerAlert = float64((cpuTime() - cpu).Microseconds()) / float64(n)
		}
		profErr := profile()
		if err := waitBacklog(ctx, sd, uint64(t.published.Load())); err != nil {
			return fail(errors.Join(err, profErr))
		}
		// Measure processing as a process that starts with the backlog
		// would: the publishing's garbage collected and returned to the OS.
		pubRSS, pubHeap = mem.Stop()
		select {
		case <-ctx.Done():
			return fail(context.Cause(ctx))
		case <-time.After(cfg.BacklogRest):
		}
		runtime.GC()
		debug.FreeOSMemory()
		mem = startMemSampler(memSampleEvery)
		if profErr != nil {
			return fail(profErr)
		}
		profile = startProfile(cfg, run, name)
		begin, cpu = time.Now(), cpuTime()
		if err := startSide(); err != nil {
			return fail(err)
		}
	}
	drainErr := waitSettled(ctx, t, cfg.DrainTimeout)
	cpu = cpuTime() - cpu
	profErr := profile()
	stopErr := stopSide()
	stopProgress()
	ph.PeakRSS, ph.PeakHeap = mem.Stop()
	if cfg.Backlog {
		ph.ProcessPeakRSS, ph.ProcessPeakHeap = ph.PeakRSS, ph.PeakHeap
		ph.PeakRSS, ph.PeakHeap = max(ph.PeakRSS, pubRSS), max(ph.PeakHeap, pubHeap)
	}

	t.fill(&ph)
	ph.Injected = t.injected(newInjector(cfg))
	if name == "raw" {
		ph.Injected = Injected{} // the raw baseline acks everything
	}
	if pubTime > 0 {
		ph.PublishRate = float64(ph.Published) / pubTime.Seconds()
	}
	if n := ph.Acked + ph.DeadLettered; n > 0 {
		ph.CPUPerAlert = float64(cpu.Microseconds()) / float64(n)
	}
	if last := t.lastSettle.Load(); last > 0 && t.firstPublish.Load() > 0 {
		elapsed := time.Unix(0, last).Sub(begin)
		ph.Duration = time.Unix(0, last).Sub(time.Unix(0, t.firstPublish.Load())).Seconds()
		if elapsed > 0 {
			ph.ProcessRate = float64(ph.Acked+ph.DeadLettered) / float64(cfg.Groups) / elapsed.Seconds()
		}
	}
	ph.Backlog, ph.DLQMessages = leftOver(js.reactor[0], sd)
	if rs, ok := sd.(*reactorSide); ok {
		ph.Metrics = counters(rs.metrics)
	}
	return ph, errors.Join(drainErr, stopErr, profErr)
}

// startProfile starts the CPU profile of a phase if cfg asks for one, and
// returns what stops it, which may be called more than once.
func startProfile(cfg Config, run, name string) (stop func() error) {
	if cfg.CPUProfile == "" {
		return func() error { return nil }
	}
	f, err := os.Create(fmt.Sprintf("%s-%s-%s.pprof", cfg.CPUProfile, run, name))
	if err != nil {
		return func() error { return fmt.Errorf("cpu profile: %w", err) }
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return func() error { return fmt.Errorf("cpu profile: %w", err) }
	}
	var once sync.Once
	return func() error {
		once.Do(func() {
			pprof.StopCPUProfile()
			err = f.Close()
		})
		return err
	}
}

// memSampleEvery is how often RSS and heap are sampled.
const memSampleEvery = 50 * time.Millisecond

// waitSettled waits until every id published with a PubAck is settled, or
// nothing was settled for idle (those ids are then lost), or ctx is done.
func waitSettled(ctx context.Context, t *tracker, idle time.Duration) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	last, lastChange := t.settled.Load(), time.Now()
	for {
		n := t.settled.Load()
		if n >= t.wanted() && !t.unsettled() {
			return nil
		}
		if n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) > idle {
			return nil // reported as lost
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
	}
}

// everyConsumer reports whether ok holds for the info of each of the
// side's consumers.
func everyConsumer(ctx context.Context, sd side, ok func(*jetstream.ConsumerInfo) bool) bool {
	cs, err := sd.consumers(ctx)
	if err != nil {
		return false
	}
	for _, c := range cs {
		info, err := c.Info(ctx)
		if err != nil || !ok(info) {
			return false
		}
	}
	return true
}

// waitPulling waits until each of the side's consumers has a pull request
// pending, so that the first publish is processed at once.
func waitPulling(ctx context.Context, sd side) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for !everyConsumer(ctx, sd, func(info *jetstream.ConsumerInfo) bool { return info.NumWaiting > 0 }) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: consumer not pulling: %w", context.Cause(ctx))
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// waitBacklog waits until each of the side's consumers has n alerts to
// deliver.
func waitBacklog(ctx context.Context, sd side, n uint64) error {
	for !everyConsumer(ctx, sd, func(info *jetstream.ConsumerInfo) bool { return info.NumPending >= n }) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: waiting for the backlog: %w", context.Cause(ctx))
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// reportProgress calls cfg.OnProgress every ProgressInterval until the
// returned function is called, which reports a last time.
func reportProgress(cfg Config, phase string, t *tracker) func() {
	if cfg.OnProgress == nil {
		return func() {}
	}
	snapshot := func(done bool) Progress {
		return Progress{Phase: phase, Msgs: t.n, Published: int(t.published.Load()), Settled: int(t.settled.Load()) / t.groups, Done: done}
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(cfg.ProgressInterval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				cfg.OnProgress(snapshot(false))
			}
		}
	}()
	return func() {
		close(stop)
		<-stopped
		cfg.OnProgress(snapshot(true))
	}
}

// leftOver returns the alerts the side's consumers have not seen acked
// (pending plus ack pending, summed) and the messages of its DLQ stream,
// read on js. Acks are asynchronous: the side's connections are flushed
// first, and the consumers are given a moment to apply the last ones.
func leftOver(js jetstream.JetStream, sd side) (left, dlq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), stream.RequestTimeoutDefault)
	defer cancel()
	_ = sd.flush(ctx)
	read := func() uint64 {
		var n uint64
		everyConsumer(ctx, sd, func(info *jetstream.ConsumerInfo) bool {
			n += info.NumPending + uint64(info.NumAckPending)
			return true
		})
		return n
	}
	deadline := time.Now().Add(2 * time.Second)
	for left = read(); left > 0 && time.Now().Before(deadline); left = read() {
		time.Sleep(20 * time.Millisecond)
	}
	if name := sd.dlq(); name != "" {
		if s, err := js.Stream(ctx, name); err == nil {
			if info, err := s.Info(ctx); err == nil {
				dlq = info.State.Msgs
			}
		}
	}
	return left, dlq
}

func runID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func settings(cfg Config) Settings {
	server := "embedded"
	if cfg.Conn.URL != "" {
		server = "external"
		if u, err := url.Parse(strings.Split(cfg.Conn.URL, ",")[0]); err == nil && u.Host != "" {
			server = u.Host
		}
	}
	return Settings{
		Server:           server,
		Size:             cfg.Size,
		Publishers:       cfg.Publishers,
		Rate:             cfg.Rate,
		Workers:          cfg.Workers,
		WorkMS:           float64(cfg.Work) / float64(time.Millisecond),
		AckWaitS:         cfg.AckWait.Seconds(),
		FailRate:         cfg.FailRate,
		PanicRate:        cfg.PanicRate,
		PermanentRate:    cfg.PermanentRate,
		SyncAlways:       cfg.SyncAlways,
		DoubleAck:        cfg.DoubleAck,
		Backlog:          cfg.Backlog,
		BacklogRestS:     cfg.BacklogRest.Seconds(),
		DuplicateWindowS: cfg.DuplicateWindow.Seconds(),
		WarmUp:           max(cfg.WarmUp, 0),
		Groups:           cfg.Groups,
		Processes:        cfg.Processes,
		Prefetch:         cfg.Prefetch,
		MaxAckPending:    cfg.MaxAckPending,
		Replicas:         cfg.Replicas,
	}
}

// open connects to the server at sc.URL, or starts an embedded one with ecfg
// when sc.URL is empty.
func open(ctx context.Context, sc stream.Config, ecfg embedded.Config) (*stream.Conn, error) {
	if sc.URL != "" {
		return stream.Open(ctx, sc)
	}
	return embedded.Open(ctx, ecfg, sc)
}

// handover deletes a phase's streams only once the next phase has created
// its own, and the last phase's when the run ends, so that the server never
// has no stream between two phases: nats-server (v2.15, stream.go stop)
// removes an account's empty streams directory in a goroutine after its
// last stream is deleted, and a stream created at that moment fails with
// "error creating store for stream".
type handover struct{ cleanup func() }

// next deletes the previous phase's streams and keeps cleanup for later.
func (h *handover) next(cleanup func()) {
	if h.cleanup != nil {
		h.cleanup()
	}
	h.cleanup = cleanup
}

// done deletes the last phase's streams.
func (h *handover) done() { h.next(nil) }
