package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/processor"
)

// The seed demo: terminal 1 runs, terminal 2 sends, terminal 1 prints.
func TestTwoTerminals(t *testing.T) {
	t.Parallel()
	run := startRun(t, "")
	r := mustReactor(t, "", "send", "--url", run.url, "--on", "terminator_detected", "bad robot detected")
	var seq int
	var id string
	if _, err := fmt.Sscanf(r.stdout, "stored alerts.terminator_detected seq=%d id=%s", &seq, &id); err != nil || seq != 1 {
		t.Fatalf("send printed %q (%v), want stored alerts.terminator_detected seq=1 id=...", r.stdout, err)
	}
	run.waitFor(5*time.Second, run.stdout, func(ls []string) bool {
		for _, l := range ls {
			if strings.Contains(l, "alerts.terminator_detected bad robot detected") && strings.Contains(l, "id="+id) {
				return true
			}
		}
		return false
	}, "the alert on run's stdout")

	if code := run.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("run exit code after SIGTERM = %d, want 0", code)
	}
	stderr := strings.Join(run.stderr.snapshot(), "\n")
	for _, want := range []string{"reactor: stopping: draining 0 in-flight alerts", "reactor: stopped"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("run's stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(strings.Join(run.stdout.snapshot(), "\n"), "processor") {
		t.Error("logs on stdout: stdout is for the alerts")
	}
}

func TestSecondSignalForcesExit(t *testing.T) {
	t.Parallel()
	run := startRun(t, "", "--config", "../../testdata/cli/slow.yaml")
	mustReactor(t, "", "send", "--url", run.url, "--on", "slow", "takes its time")
	run.waitIDs(10*time.Second, 1) // printed: the sleep is running now
	if err := run.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	run.waitStderr(10*time.Second, "draining 1 in-flight alerts")
	if code := run.stop(syscall.SIGTERM, 10*time.Second); code != exitInterrupted {
		t.Errorf("exit code after a second SIGTERM = %d, want %d", code, exitInterrupted)
	}
	run.waitStderr(time.Second, "reactor: forced exit")
}

func TestSendFile(t *testing.T) {
	t.Parallel()
	run := startRun(t, "")
	ndjson := readFixture(t, "mixed.ndjson")
	r := reactor(t, ndjson, "send", "--url", run.url, "--file", "-")
	if r.code != exitPartial {
		t.Fatalf("send --file with bad lines: exit %d, want %d\nstdout: %s\nstderr: %s", r.code, exitPartial, r.stdout, r.stderr)
	}
	if r.stdout != "stored 3 alerts (0 duplicates, 3 failed)\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	for _, want := range []string{
		"reactor: line 2: decode alert: malformed JSON",
		`reactor: line 5: decode alert: alert has neither "subject" nor "name"`,
		`reactor: line 6: decode alert: invalid subject "alerts.bad robot"`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if n := strings.Count(r.stderr, "\n"); n != 4 || !strings.HasSuffix(r.stderr, "reactor: 3 of 6 alerts failed\n") {
		t.Errorf("stderr has %d lines, want one per bad line and the count:\n%s", n, r.stderr)
	}
	got := run.waitIDs(10*time.Second, 3)
	if got["fixture-lag-1"] != 1 {
		t.Errorf("the alert with id fixture-lag-1 was not handled once: %v", got)
	}

	// The same file again: the alert with an id is a duplicate, the others
	// get new ids. As JSON for scripts.
	path := writeFile(t, "alerts.ndjson", ndjson)
	r = reactor(t, "", "send", "--url", run.url, "--file", path, "--json")
	var st fileStats
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != exitPartial {
		t.Fatalf("send --file --json: exit %d, %v: %s", r.code, err, r.stdout)
	}
	if st.Stored != 2 || st.Duplicates != 1 || st.Failed != 3 || len(st.Errors) != 3 || st.Errors[0].Line != 2 {
		t.Errorf("send --file --json = %+v", st)
	}

	// --on NAME: the line without a subject or name goes to alerts.NAME;
	// the others keep theirs.
	r = reactor(t, ndjson, "send", "--url", run.url, "--file", "-", "--on", "pager")
	if r.code != exitPartial || r.stdout != "stored 3 alerts (1 duplicates, 2 failed)\n" || strings.Contains(r.stderr, "line 5") {
		t.Errorf("send --file --on: exit %d, stdout %q, stderr %q; want line 5 stored", r.code, r.stdout, r.stderr)
	}
	run.waitFor(10*time.Second, run.stdout, func(ls []string) bool {
		return strings.Contains(strings.Join(ls, "\n"), " alerts.pager neither subject nor name ")
	}, "the nameless line handled on alerts.pager")
	if r := reactor(t, ndjson, "send", "--url", run.url, "--file", "-", "--on", "bad name"); r.code != exitUsage {
		t.Errorf("send --file --on 'bad name': exit %d, want %d: %s", r.code, exitUsage, r.stderr)
	}

	// A line longer than the server's max payload.
	huge := `{"name":"big","summary":"` + strings.Repeat("x", 2<<20) + `"}` + "\n"
	r = reactor(t, huge, "send", "--url", run.url, "--file", "-")
	if r.code != exitPartial || !strings.Contains(r.stderr, "line 1: longer than the server's max payload") {
		t.Errorf("oversized line: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestSendJSONAndLabels(t *testing.T) {
	t.Parallel()
	run := startRun(t, "", "--config", writeFile(t, "json.yaml", "handlers:\n  - {on: \"alerts.>\", print: true}\nprint: {format: json}\n"))
	r := mustReactor(t, "", "send", "--url", run.url, "--subject", "alerts.db.disk_full", "--severity", "critical",
		"--label", "host=db-3", "--label", "team=a,b", "--annotation", "runbook=https://example.com/rb", "--source", "prom",
		"--id", "fixed-id-1", "--json", "disk 95% on db-3")
	var res sendResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("send --json printed %q: %v", r.stdout, err)
	}
	if res.Subject != "alerts.db.disk_full" || res.Stream != "ALERTS" || res.Seq != 1 || res.ID != "fixed-id-1" || res.Duplicate {
		t.Errorf("send --json = %+v", res)
	}
	r = mustReactor(t, "", "send", "--url", run.url, "--subject", "alerts.db.disk_full", "--id", "fixed-id-1", "again")
	if !strings.Contains(r.stdout, "seq=1 id=fixed-id-1 (duplicate") {
		t.Errorf("send with a repeated id: %q, want the duplicate reported", r.stdout)
	}
	run.waitFor(10*time.Second, run.stdout, func(ls []string) bool { return len(ls) >= 1 }, "the alert on stdout")
	var printed struct {
		Name        string            `json:"name"`
		Severity    string            `json:"severity"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		Source      string            `json:"source"`
		Summary     string            `json:"summary"`
	}
	out := run.stdout.snapshot()
	if err := json.Unmarshal([]byte(out[0]), &printed); err != nil {
		t.Fatalf("print output %q: %v", out[0], err)
	}
	if printed.Name != "db.disk_full" || printed.Severity != "critical" || printed.Labels["team"] != "a,b" ||
		printed.Annotations["runbook"] != "https://example.com/rb" || printed.Source != "prom" || printed.Summary != "disk 95% on db-3" {
		t.Errorf("handled alert = %+v", printed)
	}
}

func TestStatusJSON(t *testing.T) {
	t.Parallel()
	run := startRun(t, "", "--user", "ops", "--password", "s3cret-pw", "--duplicate-window", "30s")
	auth := []string{"--url", run.url, "--user", "ops", "--password", "s3cret-pw"}
	for i := range 2 {
		mustReactor(t, "", append(append([]string{"send"}, auth...), "--on", "cpu", fmt.Sprint("hot ", i))...)
	}
	run.waitIDs(10*time.Second, 2)
	r := mustReactor(t, "", append(append([]string{"status"}, auth...), "--json")...)
	if strings.Contains(r.stdout, "s3cret") || strings.Contains(r.stdout, "ops@") {
		t.Errorf("status printed credentials:\n%s", r.stdout)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	get := func(path string) any {
		var v any = st
		for _, k := range strings.Split(path, ".") {
			switch x := v.(type) {
			case map[string]any:
				v = x[k]
			case []any:
				if len(x) == 0 {
					return nil
				}
				v = x[0].(map[string]any)[k]
			default:
				return nil
			}
		}
		return v
	}
	want := map[string]any{
		"server.url":                      run.url,
		"server.embedded":                 true, // reactor run embeds it, and says so when asked
		"server.data_dir":                 run.dataDir,
		"alerts.name":                     "ALERTS",
		"alerts.messages":                 2.0,
		"alerts.last_minute":              2.0,
		"alerts.last_hour":                2.0,
		"alerts.duplicate_window_seconds": 30.0,
		"alerts.max_age_seconds":          7 * 24 * 3600.0,
		"dlq.name":                        "ALERTS_DLQ",
		"dlq.messages":                    0.0,
		"groups.name":                     "reactor",
		"groups.backlog":                  0.0,
		"groups.start":                    "all (auto: first group)",
		"groups.num_pending":              0.0,
		"groups.ack_pending":              0.0,
		"groups.redelivered":              0.0,
		"groups.ack_wait_seconds":         processor.AckWaitDefault.Seconds(),
	}
	for path, w := range want {
		if got := get(path); got != w {
			t.Errorf("status %s = %v, want %v", path, got, w)
		}
	}
	for _, path := range []string{"time", "server.version", "alerts.bytes", "alerts.first_time", "alerts.last_time", "groups.waiting", "groups.delivered_seq", "groups.last_active"} {
		if get(path) == nil {
			t.Errorf("status lacks %s:\n%s", path, r.stdout)
		}
	}
	human := mustReactor(t, "", append([]string{"status"}, auth...)...)
	for _, want := range []string{"Server   " + run.url + " (embedded, data in " + run.dataDir + "), named ", ", nats-server 2.", "Alerts   ALERTS: 2 alerts", "; kept 7d", "DLQ      ALERTS_DLQ: 0 dead letters", "START", "reactor  0 ", "all (auto: first group)"} {
		if !strings.Contains(human.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, human.stdout)
		}
	}

	// After a restart the server has forgotten when it delivered: the
	// group's last activity is the time of the last alert it received.
	if code := run.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("reactor run exited %d on SIGTERM", code)
	}
	lastStored := get("alerts.last_time")
	run = startRun(t, run.dataDir, "--user", "ops", "--password", "s3cret-pw")
	auth[1] = run.url
	if err := json.Unmarshal([]byte(mustReactor(t, "", append(append([]string{"status"}, auth...), "--json")...).stdout), &st); err != nil {
		t.Fatal(err)
	}
	if got := get("groups.last_active"); got != lastStored || get("groups.last_active_approx") != true {
		t.Errorf("after a restart: last_active %v (approx %v), want %v, the last alert's time (approx)", got, get("groups.last_active_approx"), lastStored)
	}
	human = mustReactor(t, "", append([]string{"status"}, auth...)...)
	if !strings.Contains(human.stdout, " or later ") {
		t.Errorf("after a restart, status shows no last activity:\n%s", human.stdout)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	run := startRun(t, "", "--metrics", "127.0.0.1:0")
	var base string
	for _, l := range run.stderr.snapshot() {
		if u, ok := strings.CutPrefix(l, "reactor: metrics on "); ok {
			base = strings.TrimSuffix(u, "/metrics")
		}
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("no metrics address on stderr:\n%s", strings.Join(run.stderr.snapshot(), "\n"))
	}
	mustReactor(t, "", "send", "--url", run.url, "--on", "cpu", "hot")
	run.waitIDs(10*time.Second, 1)
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d", code)
	}
	// The outcome is counted once the alert is acked, just after it printed.
	handled := `reactor_alerts_handled_total{entry="alerts.>",outcome="ok"} 1`
	var body string
	run.waitFor(5*time.Second, run.stdout, func([]string) bool {
		_, body = get("/metrics")
		return strings.Contains(body, handled)
	}, "%s on /metrics", handled)
	requireMetrics(t, body, handled, "reactor_workers 16", "reactor_history_alerts 1")
	if code := run.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// A second `reactor run` joins the first one's server with --url: the two
// share the group, and each alert is handled by one of them.
func TestRunExternalURLSharesTheGroup(t *testing.T) {
	t.Parallel()
	a := startRun(t, "")
	b := startRunExternal(t, a.url)
	mustReactor(t, ndjson("alerts.shared", "s", 40), "send", "--url", a.url, "--file", "-")
	a.waitFor(10*time.Second, a.stdout, func(ls []string) bool {
		return len(ids(ls))+len(ids(b.stdout.snapshot())) >= 40
	}, "40 alerts handled by the two processes")
	fromA, fromB := ids(a.stdout.snapshot()), ids(b.stdout.snapshot())
	for id := range fromB {
		if fromA[id] > 0 {
			t.Errorf("alert %s handled by both processes", id)
		}
	}
	t.Logf("first process handled %d, second %d", len(fromA), len(fromB))
	if code := b.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("second run exit code %d", code)
	}
}

// startRunExternal starts `reactor run --url url` and waits until it is ready.
func startRunExternal(t *testing.T, url string) *runProc {
	t.Helper()
	p := &runProc{t: t, cmd: exec.Command(reactorBin, "run", "--url", url, "--log-format", "json"), stdout: &lines{}, stderr: &lines{}, done: make(chan struct{}), url: url}
	p.cmd.Env = env()
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	p.waitStderr(20*time.Second, "reactor: ready: connected to "+url+";")
	return p
}
