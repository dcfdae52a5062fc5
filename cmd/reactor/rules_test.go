package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// settled counts the distinct alerts (by sequence) whose outcome the
// processes logged at debug (ok, dropped, ...) on subjects with prefix.
func settled(prefix string, procs ...*runProc) int {
	seen := make(map[float64]bool)
	for _, p := range procs {
		for _, l := range p.stderr.snapshot() {
			var rec struct {
				Outcome string  `json:"outcome"`
				Subject string  `json:"subject"`
				Seq     float64 `json:"seq"`
			}
			if json.Unmarshal([]byte(l), &rec) != nil || !strings.HasPrefix(rec.Subject, prefix) {
				continue
			}
			if rec.Outcome == "ok" || rec.Outcome == "dropped" {
				seen[rec.Seq] = true
			}
		}
	}
	return len(seen)
}

// printed counts the distinct alert ids with prefix the processes printed.
func printed(prefix string, procs ...*runProc) int {
	n := 0
	for _, p := range procs {
		for id := range ids(p.stdout.snapshot()) {
			if strings.HasPrefix(id, prefix) {
				n++
			}
		}
	}
	return n
}

func alertLines(n int, idPrefix, subject, status, labels string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"subject":%q,"id":"%s-%02d","status":%q,"labels":%s}`+"\n", subject, idPrefix, i, status, labels)
	}
	return b.String()
}

const suppressConfig = `handlers:
  - on: "alerts.>"
    name: page
    when: {status: firing, labels: {w: long}}
    suppress: {key: "{{.Labels.instance}}", for: 1h}
    print: true
  - on: "alerts.>"
    name: page-short
    when: {status: firing, labels: {w: short}}
    suppress: {key: "{{.Labels.instance}}", for: 2s}
    print: true
  - on: "alerts.>"
    name: resolved
    when: {status: resolved}
`

// TestSuppressionSharedByTheGroup runs two `reactor run` processes of one
// group: a burst of repeats runs the action once; kill -9 one process in
// the middle of the window and restart it: still once; a resolved alert
// ends the window, and the next firing one acts; a window that expires
// lets the next alert act.
func TestSuppressionSharedByTheGroup(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, "rules.yaml", suppressConfig)
	common := []string{"--config", cfg, "--log-level", "debug", "--ack-wait", "2s"}
	a := startRun(t, "", common...)
	b := startRunExternalArgs(t, a.url, common...)
	procs := []*runProc{a, b}
	send := func(lines string) {
		t.Helper()
		mustReactor(t, lines, "send", "--url", a.url, "--file", "-")
	}
	waitSettled := func(prefix string, n int) {
		t.Helper()
		a.waitFor(20*time.Second, a.stdout, func([]string) bool { return settled(prefix, procs...) >= n },
			"%d alerts on %s settled", n, prefix)
	}
	db1 := `{"w":"long","instance":"db-1"}`

	// A burst of 20 repeats: one print, by one of the two.
	send(alertLines(20, "burst", "alerts.burst", "firing", db1))
	waitSettled("alerts.burst", 20)
	if got := printed("burst", procs...); got != 1 {
		t.Fatalf("burst of 20 repeats: printed %d, want 1", got)
	}

	// kill -9 the second process mid-window; its replacement sees the
	// window in JetStream.
	if code := b.stop(syscall.SIGKILL, 10*time.Second); code != -1 {
		t.Fatalf("exit code %d, want -1 (killed)", code)
	}
	b2 := startRunExternalArgs(t, a.url, common...)
	procs = append(procs, b2)
	send(alertLines(10, "afterkill", "alerts.afterkill", "firing", db1))
	waitSettled("alerts.afterkill", 10)
	if got := printed("afterkill", procs...); got != 0 {
		t.Fatalf("after kill -9 and restart: printed %d repeats, want 0", got)
	}

	// Resolved ends the window: the next firing alert acts, its repeats do
	// not.
	send(alertLines(1, "resolve", "alerts.resolve", "resolved", db1))
	waitSettled("alerts.resolve", 1)
	send(alertLines(1, "refire", "alerts.refire", "firing", db1))
	waitSettled("alerts.refire", 1)
	send(alertLines(5, "refire-repeat", "alerts.refirerepeat", "firing", db1))
	waitSettled("alerts.refirerepeat", 5)
	if got, again := printed("refire-", procs...), printed("refire-repeat", procs...); got-again != 1 || again != 0 {
		t.Fatalf("after resolved: printed %d firing and %d repeats, want 1 and 0", got-again, again)
	}

	// A short window expires: the next alert acts again.
	short := `{"w":"short","instance":"db-2"}`
	send(alertLines(1, "short1", "alerts.short", "firing", short))
	waitSettled("alerts.short", 1)
	a.waitFor(20*time.Second, a.stdout, func([]string) bool {
		r := reactor(t, "", "rules", "explain", "--url", a.url, "--config", cfg, "--json", "--subject", "alerts.short", writeFile(t, "a.json", `{"labels":`+short+`}`))
		var ex struct {
			Suppress struct {
				Open bool `json:"open"`
			} `json:"suppress"`
		}
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &ex) == nil && !ex.Suppress.Open
	}, "the short window to expire")
	send(alertLines(1, "short2", "alerts.short", "firing", short))
	waitSettled("alerts.short", 2)
	if got := printed("short", procs...); got != 2 {
		t.Fatalf("short window: printed %d, want 2 (one per window)", got)
	}

	// status shows the group's counts, added up in JetStream by the
	// processes (the killed one's last few seconds may be lost).
	a.waitFor(20*time.Second, a.stdout, func([]string) bool {
		var st struct {
			Rules []struct {
				Group, Entry string
				Suppressed   int
				Filtered     int
			} `json:"rules"`
		}
		r := mustReactor(t, "", "status", "--url", a.url, "--json")
		if json.Unmarshal([]byte(r.stdout), &st) != nil {
			return false
		}
		var page, resolved int
		for _, e := range st.Rules {
			switch {
			case e.Group == "reactor" && e.Entry == "page":
				page = e.Suppressed
			case e.Group == "reactor" && e.Entry == "resolved":
				resolved = e.Filtered
			}
		}
		// After the kill: 10 + 5 suppressed, counted by the survivors.
		return page >= 15 && page <= 34 && resolved == 1
	}, "status --json to count the suppressed and filtered alerts")
	if r := mustReactor(t, "", "status", "--url", a.url); !strings.Contains(r.stdout, "RULE ENTRY") {
		t.Errorf("status has no rules table:\n%s", r.stdout)
	}
	for _, p := range []*runProc{b2, a} {
		if code := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
			t.Errorf("exit code %d", code)
		}
	}
}

// startRunExternalArgs starts `reactor run --url url args...` and waits until
// it is ready.
func startRunExternalArgs(t *testing.T, url string, args ...string) *runProc {
	t.Helper()
	args = append([]string{"run", "--url", url, "--log-format", "json"}, args...)
	p := startProc(t, nil, nil, "reactor: ready: connected to "+url+";", args...)
	p.url = url
	return p
}

// TestLimitsHoldRateAndConcurrency: 50 alerts through an exec limited to 2
// at once and 10/s, with --max-deliver 2 so that a deferral counted as a
// delivery would dead-letter: the command's own timestamps show never more
// than 2 runs at once and starts spaced by the rate, every alert ran, none
// was dead-lettered.
func TestLimitsHoldRateAndConcurrency(t *testing.T) {
	t.Parallel()
	const n = 50
	const interval = 100 * time.Millisecond
	runs := filepath.Join(t.TempDir(), "runs")
	cfg := writeFile(t, "limits.yaml", fmt.Sprintf(`handlers:
  - on: "alerts.>"
    limit: {rate: 10/s, concurrent: 2}
    exec:
      command: ["sh", "-c", "echo \"start $(date +%%s%%N) $REACTOR_ALERT_ID\" >> %[1]s; sleep 0.15; echo \"end $(date +%%s%%N) $REACTOR_ALERT_ID\" >> %[1]s"]
`, runs))
	run := startRun(t, "", "--config", cfg, "--max-deliver", "2", "--log-level", "debug")
	mustReactor(t, alertLines(n, "lim", "alerts.limited", "firing", `{}`), "send", "--url", run.url, "--file", "-")
	run.waitFor(60*time.Second, run.stdout, func([]string) bool { return settled("alerts.limited", run) >= n }, "%d alerts handled", n)

	type event struct {
		at    time.Time
		start bool
		id    string
	}
	f, err := os.Open(runs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		ns, err := strconv.ParseInt(fields[1], 10, 64)
		if len(fields) != 3 || err != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		events = append(events, event{at: time.Unix(0, ns), start: fields[0] == "start", id: fields[2]})
	}
	slices.SortStableFunc(events, func(x, y event) int { return x.at.Compare(y.at) })
	var starts []time.Time
	ran := make(map[string]bool)
	running, most := 0, 0
	for _, e := range events {
		if e.start {
			running++
			most = max(most, running)
			starts = append(starts, e.at)
			ran[e.id] = true
		} else {
			running--
		}
	}
	if most > 2 {
		t.Errorf("%d runs at once, want at most 2", most)
	}
	if len(ran) != n || len(starts) != n {
		t.Errorf("%d runs of %d alerts, want %d of %d", len(starts), len(ran), n, n)
	}
	// Each run takes a slot of its own, slots are interval apart, and a
	// run starts within one interval of its slot: any k+1 consecutive
	// starts span at least (k-1) intervals, less the command's start-up.
	const k, slack = 10, 50 * time.Millisecond
	for i := 0; i+k < len(starts); i++ {
		if span := starts[i+k].Sub(starts[i]); span < (k-1)*interval-slack {
			t.Errorf("starts %d..%d within %s: faster than 10/s beyond the tolerance", i, i+k, span)
		}
	}
	total := starts[len(starts)-1].Sub(starts[0])
	t.Logf("%d runs in %s (%.1f/s), at most %d at once", len(starts), total, float64(len(starts)-1)/total.Seconds(), most)
	st := statusJSON(t, run.url)
	if dlq := st["dlq"].(map[string]any)["messages"]; dlq != 0.0 {
		t.Errorf("%v dead letters, want 0", dlq)
	}
	if code := run.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestRulesExplain: explain from a file, stdin and a stored sequence, with
// and without a server, and its usage errors.
func TestRulesExplain(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join("..", "..", "testdata", "handlers", "rules.example.yaml")
	page := `{"subject":"alerts.disk.db-3","severity":"critical","labels":{"team":"db","instance":"db-3"}}`
	noServer := closedURL(t)

	r := mustReactor(t, page, "rules", "explain", "--url", noServer, "--config", cfg, "-")
	for _, want := range []string{
		"alerts.disk.> (line 2): TAKES IT",
		`ok   label instance =~ "db-.*": got "db-3"`,
		"Outcome  alerts.disk.> runs exec /usr/local/bin/page --team db",
		`Suppress key "db-3", window 10m0s (group reactor): state unknown`,
		"Limit    one run every 6s in each process, at most 2 at once across the group (lease 15s)",
		`Slots    key "" (group reactor): state unknown`,
		"Unknown  suppression windows, concurrency slots and counts: no NATS server",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("explain lacks %q:\n%s", want, r.stdout)
		}
	}
	warning := writeFile(t, "w.json", `{"name":"disk.sda","severity":"warning","labels":{"team":"db"}}`)
	r = mustReactor(t, "", "rules", "explain", "--url", noServer, "--config", cfg, warning)
	for _, want := range []string{
		`FAIL severity in [critical error]: got warning`,
		`disk-warnings (on alerts.disk.>, line 11): TAKES IT`,
		"Outcome  disk-warnings runs print",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("explain lacks %q:\n%s", want, r.stdout)
		}
	}
	r = mustReactor(t, "info text", "rules", "explain", "--url", noServer, "--config", cfg, "--subject", "alerts.cpu", "--json", "-")
	var ex struct {
		Entry, Outcome string
	}
	if err := json.Unmarshal([]byte(r.stdout), &ex); err != nil || ex.Outcome != "act" || ex.Entry != "alerts.>#2" {
		t.Errorf("text alert (warning): %+v %v\n%s", ex, err, r.stdout)
	}

	// A stored alert, and the window it opened, read from the server.
	run := startRun(t, "", "--config", writeFile(t, "page.yaml", "handlers:\n  - on: alerts.>\n    suppress: {key: \"{{.Labels.instance}}\", for: 1h}\n    print: true\n"))
	mustReactor(t, page+"\n", "send", "--url", run.url, "--file", "-")
	run.waitIDs(10*time.Second, 1)
	r = mustReactor(t, "", "rules", "explain", "--url", run.url, "--config", cfg, "--seq", "1")
	if !strings.Contains(r.stdout, "Alert    alerts.disk.db-3, severity critical") || !strings.Contains(r.stdout, "none open: this alert would open one") {
		t.Errorf("explain --seq 1 (another config's window):\n%s", r.stdout)
	}
	r = mustReactor(t, page, "rules", "explain", "--url", run.url, "--config", writeFile(t, "page2.yaml", "handlers:\n  - on: alerts.>\n    suppress: {key: \"{{.Labels.instance}}\", for: 1h}\n    print: true\n"), "-")
	if !strings.Contains(r.stdout, "Outcome  suppressed now by alerts.>") || !strings.Contains(r.stdout, "open, opened by ") {
		t.Errorf("explain of a repeat:\n%s", r.stdout)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rules", "explain"}, "explain takes one alert"},
		{[]string{"rules", "explain", "--seq", "1", "x.json"}, "give a FILE or --seq, not both"},
		{[]string{"rules", "explain", "--url", noServer, "--seq", "1"}, "no NATS server"},
		{[]string{"rules", "explain", "--url", noServer, "--config", filepath.Join("..", "..", "testdata", "handlers", "bad_rules_status.yaml"), "-"}, `bad_rules_status.yaml: line 4: when: status "open"`},
		{[]string{"rules", "explain", "--url", noServer, "-"}, `the alert has neither "subject" nor "name"`},
		{[]string{"rules", "explain", "--url", run.url, "--seq", "999"}, "reactor: no alert 999 in ALERTS (first 1, last 1): see `reactor status`"},
	} {
		r := reactor(t, "text", tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("reactor %s: exit %d, stderr %q, want %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
}

// TestRuleCountsOnMetrics: /metrics shows this process's counts per entry.
func TestRuleCountsOnMetrics(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, "f.yaml", "handlers:\n  - on: alerts.>\n    name: drop-info\n    when: {severity: [info]}\n  - on: alerts.>\n    print: true\n")
	run := startRun(t, "", "--config", cfg, "--metrics", "127.0.0.1:0")
	var base string
	for _, l := range run.stderr.snapshot() {
		if u, ok := strings.CutPrefix(l, "reactor: metrics on "); ok {
			base = u
		}
	}
	mustReactor(t, `{"subject":"alerts.a","severity":"info"}`+"\n"+`{"subject":"alerts.b","id":"b"}`+"\n", "send", "--url", run.url, "--file", "-")
	run.waitIDs(10*time.Second, 1)
	want := `reactor_rule_alerts_total{entry="drop-info",result="filtered"} 1`
	var body string
	run.waitFor(10*time.Second, run.stdout, func([]string) bool {
		resp, err := http.Get(base)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return strings.Contains(body, want)
	}, "%s on /metrics", want)
	if !strings.Contains(body, `reactor_rule_alerts_total{entry="alerts.>#2",result="suppressed"} 0`) {
		t.Errorf("/metrics lacks the second entry's counts:\n%s", body)
	}
}
