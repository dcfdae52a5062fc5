package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream/embedded"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// actionRun is one run of the per-host exec, from its own log lines.
type actionRun struct {
	host, id   string
	ppid, pgid int // the reactor process that ran it; the command's (its group)
	start, end time.Time
}

// readRuns parses the lines the exec of perHostConfig appends to path, one
// run per command, in the order they started.
func readRuns(t *testing.T, path string) []*actionRun {
	t.Helper()
	var runs []*actionRun
	byPgid := make(map[int]*actionRun)
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return runs
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start|end <ns> <host> <id> <ppid> <pgid>
		fs := strings.Fields(sc.Text())
		if len(fs) != 6 {
			continue // a line being written
		}
		ns, _ := strconv.ParseInt(fs[1], 10, 64)
		ppid, _ := strconv.Atoi(fs[4])
		pgid, _ := strconv.Atoi(fs[5])
		r := byPgid[pgid]
		if r == nil {
			r = &actionRun{host: fs[2], id: fs[3], ppid: ppid, pgid: pgid}
			byPgid[pgid] = r
			runs = append(runs, r)
		}
		if fs[0] == "start" {
			r.start = time.Unix(0, ns)
		} else {
			r.end = time.Unix(0, ns)
		}
	}
	slices.SortStableFunc(runs, func(x, y *actionRun) int { return x.start.Compare(y.start) })
	return runs
}

// runsOf are the runs of the alert with id.
func runsOf(runs []*actionRun, id string) []*actionRun {
	return slices.DeleteFunc(slices.Clone(runs), func(r *actionRun) bool { return r.id != id })
}

// perHostConfig runs one exec per alert, at most one at once per host over
// the group, logging its start and end to log; the alert's label sleep
// says how long its first delivery runs (0.3 s otherwise).
func perHostConfig(t *testing.T, log string, lease time.Duration) string {
	t.Helper()
	script := `echo "start $(date +%s%N) $1 $2 $PPID $$" >> "$LOG"; sleep "$3"; echo "end $(date +%s%N) $1 $2 $PPID $$" >> "$LOG"`
	return writeFile(t, "per-host.yaml", fmt.Sprintf(`handlers:
  - on: "alerts.>"
    limit: {concurrent: 1, per: "{{.Labels.host}}", lease: %s}
    exec:
      command: ["sh", "-c", %q, "sh", "{{.Labels.host}}", "{{.ID}}",
        "{{if eq .Delivered 1}}{{.Labels.sleep | default \"0.3\"}}{{else}}0.3{{end}}"]
      env: {LOG: %q}
`, lease, script, log))
}

// TestConcurrencyPerHostAcrossProcesses: two `reactor run` of one group,
// 8 alerts for host a and 8 for host b, a 300 ms action limited to one run
// at once per host: never two runs of a host at once, a and b in parallel,
// nothing dead-lettered. Then the process running a long action of host a
// is killed (kill -9): host a runs again within the lease.
func TestConcurrencyPerHostAcrossProcesses(t *testing.T) {
	t.Parallel()
	const lease = 3 * time.Second
	srv := streamtest.NewServer(t)
	url := srv.InProcess.(*embedded.Server).ClientURL()
	log := filepath.Join(t.TempDir(), "runs.log")
	cfg := perHostConfig(t, log, lease)
	// A short ack wait, as in the crash tests: the alerts the killed
	// process held come back in seconds.
	args := []string{"--group", "restarts", "--config", cfg, "--max-deliver", "2", "--ack-wait", "2s"}
	procs := []*runProc{startRunExternalArgs(t, url, args...), startRunExternalArgs(t, url, args...)}
	// Kill whatever command a killed process leaves behind.
	t.Cleanup(func() {
		for _, r := range readRuns(t, log) {
			if r.end.IsZero() && r.pgid > 0 {
				_ = syscall.Kill(-r.pgid, syscall.SIGKILL)
			}
		}
	})

	var alerts strings.Builder
	for i := range 8 {
		for _, host := range []string{"a", "b"} {
			fmt.Fprintf(&alerts, `{"subject":"alerts.restart","id":"%s-%d","labels":{"host":%q}}`+"\n", host, i, host)
		}
	}
	mustReactor(t, alerts.String(), "send", "--url", url, "--file", "-")
	streamtest.Eventually(t, 60*time.Second, func() error {
		done := 0
		for _, r := range readRuns(t, log) {
			if !r.end.IsZero() {
				done++
			}
		}
		if done < 16 {
			return fmt.Errorf("%d of 16 runs ended", done)
		}
		return nil
	}, "16 runs")

	runs := readRuns(t, log)
	byHost := map[string][]*actionRun{}
	pids := map[int]int{}
	for _, r := range runs {
		byHost[r.host] = append(byHost[r.host], r)
		pids[r.ppid]++
	}
	for host, rs := range byHost {
		if len(rs) != 8 {
			t.Errorf("host %s: %d runs, want 8", host, len(rs))
		}
		for i := 1; i < len(rs); i++ {
			if rs[i].start.Before(rs[i-1].end) {
				t.Errorf("host %s: %s started at %s, before %s ended at %s", host, rs[i].id, rs[i].start.Format(time.StampMicro), rs[i-1].id, rs[i-1].end.Format(time.StampMicro))
			}
		}
	}
	parallel := false
	for _, a := range byHost["a"] {
		for _, b := range byHost["b"] {
			if a.start.Before(b.end) && b.start.Before(a.end) {
				parallel = true
			}
		}
	}
	if !parallel {
		t.Errorf("no run of host a overlapped one of host b: the limit is per host, they should run in parallel")
	}
	t.Logf("16 runs in %s, by process %v", runs[len(runs)-1].end.Sub(runs[0].start).Round(time.Millisecond), pids)
	if dlq := statusJSON(t, url)["dlq"].(map[string]any)["messages"]; dlq != 0.0 {
		t.Errorf("%v dead letters, want 0", dlq)
	}

	// A long run of host a, then the next alert of host a, which waits.
	mustReactor(t, `{"subject":"alerts.restart","id":"long","labels":{"host":"a","sleep":"30"}}`+"\n", "send", "--url", url, "--file", "-")
	var long *actionRun
	streamtest.Eventually(t, 30*time.Second, func() bool {
		rs := runsOf(readRuns(t, log), "long")
		if len(rs) > 0 {
			long = rs[0]
		}
		return long != nil
	}, "the long run started")
	mustReactor(t, `{"subject":"alerts.restart","id":"next","labels":{"host":"a"}}`+"\n", "send", "--url", url, "--file", "-")
	next := storedSeq(t, srv.JS, "next")
	deferrals, err := srv.JS.KeyValue(context.Background(), processor.DeferralsBucket)
	if err != nil {
		t.Fatal(err)
	}
	streamtest.Eventually(t, 30*time.Second, func() error {
		_, err := deferrals.Get(context.Background(), fmt.Sprintf("restarts.ALERTS.%d", next))
		return err
	}, "the next alert of host a deferred while the long run holds the slot")
	if rs := runsOf(readRuns(t, log), "next"); len(rs) > 0 {
		t.Fatalf("the next alert of host a ran during the long run")
	}
	longSeq := storedSeq(t, srv.JS, "long")
	ex := mustReactor(t, `{"subject":"alerts.restart","labels":{"host":"a"}}`, "rules", "explain", "--url", url, "--group", "restarts", "--config", cfg, "-")
	for _, want := range []string{
		"Limit    at most 1 at once per key {{.Labels.host}} across the group (lease 3s)",
		`Slots    key "a" (group restarts): 1 of 1 taken: this alert would wait`,
		fmt.Sprintf("  slot 0: ALERTS:%d on ", longSeq),
		`Outcome  alerts.> runs exec sh -c echo "start`,
	} {
		if !strings.Contains(ex.stdout, want) {
			t.Errorf("explain lacks %q:\n%s", want, ex.stdout)
		}
	}
	if ex := mustReactor(t, `{"subject":"alerts.restart","labels":{"host":"b"}}`, "rules", "explain", "--url", url, "--group", "restarts", "--config", cfg, "-"); !strings.Contains(ex.stdout, `Slots    key "b" (group restarts): 0 of 1 taken: this alert would run now`) {
		t.Errorf("explain of host b:\n%s", ex.stdout)
	}

	var holder, survivor *runProc
	for _, p := range procs {
		if p.cmd.Process.Pid == long.ppid {
			holder = p
		} else {
			survivor = p
		}
	}
	if holder == nil {
		t.Fatalf("the long run's parent %d is neither reactor process", long.ppid)
	}
	if err := holder.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-holder.done
	// After the lease, host a runs again on the survivor: the next alert,
	// or the long one again (its process died: at least once), whose
	// second delivery is short; then the other.
	streamtest.Eventually(t, lease+15*time.Second, func() error {
		if rs := runsOf(readRuns(t, log), "next"); len(rs) > 0 && !rs[0].end.IsZero() {
			return nil
		}
		return fmt.Errorf("not yet; the survivor's log:\n%s", tail(survivor.stderr.snapshot(), 20))
	}, "the next alert of host a ran after the holder was killed")
	var after []*actionRun
	for _, r := range readRuns(t, log) {
		if r.host == "a" && r.start.After(killed) {
			after = append(after, r)
		}
	}
	for i, r := range after {
		if r.ppid != survivor.cmd.Process.Pid {
			t.Errorf("%s ran by %d after the kill, want the survivor %d", r.id, r.ppid, survivor.cmd.Process.Pid)
		}
		if i > 0 && r.start.Before(after[i-1].end) {
			t.Errorf("host a: %s started before %s ended", r.id, after[i-1].id)
		}
	}
	waited := after[0].start.Sub(killed)
	t.Logf("host a ran again %s after the kill (lease %s): %d runs after it, first %s", waited.Round(time.Millisecond), lease, len(after), after[0].id)
	// The slot frees itself within the lease; then the alert's deferral
	// (the average run, 300 ms) and the command's start.
	if waited > lease+3*time.Second {
		t.Errorf("host a waited %s after its holder died, more than the lease of %s", waited, lease)
	}
	if code := survivor.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// storedSeq is the stream sequence of the alert with id.
func storedSeq(t *testing.T, js jetstream.JetStream, id string) uint64 {
	t.Helper()
	for _, m := range streamtest.StoredMsgs(t, js, "alerts.>") {
		if m.Header.Get(nats.MsgIdHdr) == id {
			return m.Sequence
		}
	}
	t.Fatalf("alert %s not stored", id)
	return 0
}

// pagerDutyEvents is a local Events API v2 endpoint: it answers 202 and
// keeps what it received.
type pagerDutyEvents struct {
	mu     sync.Mutex
	events []map[string]any
	srv    *httptest.Server
}

func newPagerDutyEvents(t *testing.T) *pagerDutyEvents {
	p := &pagerDutyEvents{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev map[string]any
		if r.URL.Path != "/v2/enqueue" || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &ev) != nil {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = fmt.Fprintf(w, `{"status":"invalid event","message":"Event object is invalid","errors":["%s"]}`, r.URL.Path)
			return
		}
		p.mu.Lock()
		p.events = append(p.events, ev)
		p.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"status":"success","message":"Event processed","dedup_key":"x"}`))
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pagerDutyEvents) snapshot() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// TestAlertmanagerToPagerDuty: Alertmanager's firing and resolved
// notifications of one alert, through /v1/alertmanager, end as a
// PagerDuty trigger and a resolve with the same dedup_key.
func TestAlertmanagerToPagerDuty(t *testing.T) {
	t.Parallel()
	pd := newPagerDutyEvents(t)
	cfg := writeFile(t, "pd.yaml", fmt.Sprintf(`handlers:
  - on: "alerts.>"
    pagerduty: {routing_key: "${REACTOR_TEST_PD_KEY}", url: %q}
`, pd.srv.URL+"/v2/enqueue"))
	run := startRunWriter(t, nil, []string{"REACTOR_TEST_PD_KEY=pd-0123456789abcdef0123456789ab"}, "",
		"--http", "127.0.0.1:0", "--config", cfg, "--public-url", "https://reactor.example.com")
	am := startAlertmanager(t, run.ingestURL()+"/v1/alertmanager", "          follow_redirects: true")

	alert := amAlert{Labels: map[string]string{"alertname": "DiskFull", "host": "db-1", "severity": "critical"},
		Annotations: map[string]string{"summary": "disk 95% on db-1"}, StartsAt: time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)}
	am.post(alert)
	streamtest.Eventually(t, 60*time.Second, func() bool { return len(pd.snapshot()) >= 1 }, "PagerDuty's trigger")
	alert.EndsAt = time.Now().UTC().Add(-time.Second)
	am.post(alert)
	streamtest.Eventually(t, 60*time.Second, func() bool { return len(pd.snapshot()) >= 2 }, "PagerDuty's resolve")

	evs := pd.snapshot()
	if len(evs) != 2 {
		t.Fatalf("%d events, want a trigger and a resolve: %v", len(evs), evs)
	}
	trigger, resolve := evs[0], evs[1]
	if trigger["event_action"] != "trigger" || resolve["event_action"] != "resolve" {
		t.Errorf("event actions %v then %v, want trigger then resolve", trigger["event_action"], resolve["event_action"])
	}
	if k := trigger["dedup_key"]; k == "" || k != resolve["dedup_key"] {
		t.Errorf("dedup_key %v then %v, want the same", k, resolve["dedup_key"])
	}
	if trigger["routing_key"] != "pd-0123456789abcdef0123456789ab" {
		t.Errorf("routing_key %v", trigger["routing_key"])
	}
	payload, _ := trigger["payload"].(map[string]any)
	if payload["summary"] != "disk 95% on db-1" || payload["severity"] != "critical" || payload["source"] != "db-1" {
		t.Errorf("payload %v", payload)
	}
	if link, _ := trigger["client_url"].(string); !strings.HasPrefix(link, "https://reactor.example.com/alerts/") {
		t.Errorf("client_url %q, want the alert's console page", link)
	}
	if strings.Contains(strings.Join(run.stderr.snapshot(), "\n"), "pd-0123456789abcdef") {
		t.Errorf("the routing key is in the log")
	}
}
