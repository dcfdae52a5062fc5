package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// The ingest tests against the real Prometheus Alertmanager, built from the
// module proxy by .ci/alertmanager.sh (once per machine, cached).

const alertmanagerVersion = "v0.35.0"

var (
	amOnce sync.Once
	amBin  string
	amErr  error
)

// alertmanagerBin returns the Alertmanager binary: $REACTOR_ALERTMANAGER,
// or the one .ci/alertmanager.sh caches, which it builds first if missing.
func alertmanagerBin(t *testing.T) string {
	t.Helper()
	amOnce.Do(func() {
		if p := os.Getenv("REACTOR_ALERTMANAGER"); p != "" {
			amBin = p
			return
		}
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				amErr = err
				return
			}
			cache = filepath.Join(home, ".cache")
		}
		amBin = filepath.Join(cache, "reactor", "alertmanager-"+alertmanagerVersion, "alertmanager")
		if _, err := os.Stat(amBin); err == nil {
			return
		}
		t.Logf("building Alertmanager %s into %s with .ci/alertmanager.sh (the first time on this machine takes a few minutes)", alertmanagerVersion, amBin)
		script, err := filepath.Abs(filepath.Join("..", "..", ".ci", "alertmanager.sh"))
		if err != nil {
			amErr = err
			return
		}
		var out bytes.Buffer
		cmd := exec.Command(script)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			amErr = fmt.Errorf("%s: %v\n%s", script, err, out.String())
		}
	})
	if amErr != nil {
		t.Fatalf("alertmanager: %v", amErr)
	}
	return amBin
}

// alertmanager is a running Alertmanager.
type alertmanager struct {
	t   *testing.T
	url string
}

// startAlertmanager starts Alertmanager on a free port of 127.0.0.1,
// clustering off, its store in t.TempDir(), with one webhook receiver
// posting to webhookURL with httpConfig (YAML lines under http_config), and
// short group intervals.
func startAlertmanager(t *testing.T, webhookURL, httpConfig string) *alertmanager {
	t.Helper()
	bin := alertmanagerBin(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: reactor
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 500ms
  repeat_interval: 1h
receivers:
  - name: reactor
    webhook_configs:
      - url: %q
        send_resolved: true
        http_config:
%s
`, webhookURL, httpConfig)
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	var logs lines
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--log.level=debug",
	)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("alertmanager log:\n%s", tail(logs.snapshot(), 40))
		}
	})
	am := &alertmanager{t: t, url: "http://" + addr}
	streamtest.Eventually(t, 30*time.Second, func() error {
		select {
		case <-done:
			t.Fatalf("alertmanager exited:\n%s", tail(logs.snapshot(), 40))
		default:
		}
		resp, err := http.Get(am.url + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /-/ready: %s", resp.Status)
		}
		return nil
	}, "alertmanager ready on %s", addr)
	return am
}

// amAlert is an alert as Alertmanager's API v2 takes it.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// firingSince returns a constructor of alerts named name on host, firing
// since start.
func firingSince(start time.Time) func(name, host string) amAlert {
	return func(name, host string) amAlert {
		return amAlert{Labels: map[string]string{"alertname": name, "host": host}, StartsAt: start}
	}
}

// post posts alerts to Alertmanager's /api/v2/alerts, as Prometheus does.
func (am *alertmanager) post(alerts ...amAlert) {
	am.t.Helper()
	body, err := json.Marshal(alerts)
	if err != nil {
		am.t.Fatal(err)
	}
	resp, err := http.Post(am.url+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		am.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(resp.Body)
		am.t.Fatalf("POST /api/v2/alerts: %s: %s", resp.Status, data)
	}
}

// waitWebhookFailures waits until Alertmanager counted at least n failed
// webhook requests: it tried, failed and tried again.
func (am *alertmanager) waitWebhookFailures(timeout time.Duration, n float64) {
	am.t.Helper()
	streamtest.Eventually(am.t, timeout, func() error {
		if f := am.webhookFailures(); f < n {
			return fmt.Errorf("%v failed webhook requests, want %v or more", f, n)
		}
		return nil
	}, "alertmanager's failed webhook requests")
}

// webhookFailures is the number of failed webhook requests Alertmanager
// counted: every attempt, retries included.
func (am *alertmanager) webhookFailures() float64 {
	am.t.Helper()
	resp, err := http.Get(am.url + "/metrics")
	if err != nil {
		am.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		am.t.Fatal(err)
	}
	var sum float64
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "alertmanager_notification_requests_failed_total{") && strings.Contains(l, `integration="webhook"`) {
			f := strings.Fields(l)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err == nil {
				sum += v
			}
		}
	}
	return sum
}

// handled counts the print handler's lines of run by label host and
// status: "db-1/firing" -> 1.
func handled(ls []string) map[string]int {
	out := make(map[string]int)
	for _, l := range ls {
		var host, status string
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "host="); ok {
				host = v
			}
			if v, ok := strings.CutPrefix(f, "status="); ok {
				status = v
			}
		}
		if host != "" {
			out[host+"/"+status]++
		}
	}
	return out
}

// waitHandled waits until run printed every one of want at least once.
func (p *runProc) waitHandled(timeout time.Duration, want ...string) {
	p.t.Helper()
	p.waitFor(timeout, p.stdout, func(ls []string) bool {
		h := handled(ls)
		for _, w := range want {
			if h[w] == 0 {
				return false
			}
		}
		return true
	}, "alerts %v handled", want)
}

// checkOnce fails unless each alert (host/status) was handled exactly once
// and stored exactly once, and nothing else was.
func checkOnce(t *testing.T, run *runProc, want ...string) {
	t.Helper()
	h := handled(run.stdout.snapshot())
	for _, w := range want {
		if h[w] != 1 {
			t.Errorf("%s handled %d times, want once (all: %v)", w, h[w], h)
		}
	}
	if len(h) != len(want) {
		t.Errorf("handled %v, want exactly %v", h, want)
	}
	stored := make(map[string]int)
	for _, a := range storedAlerts(t, run.url) {
		stored[a.Labels["host"]+"/"+a.Status]++
	}
	for _, w := range want {
		if stored[w] != 1 {
			t.Errorf("%s stored %d times, want once (all: %v)", w, stored[w], stored)
		}
	}
	if len(stored) != len(want) {
		t.Errorf("stored %v, want exactly %v", stored, want)
	}
}

func TestAlertmanagerFiringThenResolved(t *testing.T) {
	t.Parallel()
	const token = "am-S3cret"
	run := startRun(t, "", "--http", "127.0.0.1:0", "--http-token", token)
	am := startAlertmanager(t, run.ingestURL()+"/v1/alertmanager",
		"          authorization:\n            type: Bearer\n            credentials: "+token)

	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	alerts := []amAlert{
		{Labels: map[string]string{"alertname": "DiskFull", "host": "db-1", "severity": "critical"},
			Annotations: map[string]string{"summary": "disk 95% on db-1"}, StartsAt: start, GeneratorURL: "http://prometheus.test/graph"},
		{Labels: map[string]string{"alertname": "DiskFull", "host": "db-2", "severity": "warning"},
			Annotations: map[string]string{"description": "disk 91% on db-2"}, StartsAt: start},
		{Labels: map[string]string{"alertname": "High latency", "host": "api-1"}, StartsAt: start},
	}
	am.post(alerts...)
	run.waitHandled(60*time.Second, "db-1/firing", "db-2/firing", "api-1/firing")

	out := strings.Join(run.stdout.snapshot(), "\n")
	for _, want := range []string{
		"CRITICAL alerts.DiskFull disk 95% on db-1 id=alertmanager-",
		"WARNING  alerts.DiskFull disk 91% on db-2 id=alertmanager-",
		"WARNING  alerts.High_latency High latency id=alertmanager-",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}

	// Prometheus resolves an alert by sending it with endsAt in the past.
	for i := range alerts {
		alerts[i].EndsAt = time.Now().UTC().Add(-time.Second)
	}
	am.post(alerts...)
	run.waitHandled(60*time.Second, "db-1/resolved", "db-2/resolved", "api-1/resolved")
	checkOnce(t, run, "db-1/firing", "db-2/firing", "api-1/firing", "db-1/resolved", "db-2/resolved", "api-1/resolved")
	for _, a := range storedAlerts(t, run.url) {
		if a.Status == stream.StatusResolved && a.EndsAt.IsZero() {
			t.Errorf("resolved alert without ends_at: %+v", a)
		}
	}
	if f := am.webhookFailures(); f != 0 {
		t.Errorf("alertmanager counted %v failed webhook requests, want 0", f)
	}
}

// TestAlertmanagerRetriesWhileIngestDown: `reactor ingest` stops while
// Alertmanager has alerts to notify; Alertmanager retries, and once ingest
// is back every alert is handled, none stored twice.
func TestAlertmanagerRetriesWhileIngestDown(t *testing.T) {
	t.Parallel()
	const token = "basic-S3cret"
	run := startRun(t, "")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startIngest := func() *runProc {
		return startProc(t, nil, nil, "reactor: ready:", "ingest", "--http", addr, "--url", run.url,
			"--http-token", token, "--log-format", "json")
	}
	ing := startIngest()
	am := startAlertmanager(t, "http://"+addr+"/v1/alertmanager",
		"          basic_auth:\n            username: alertmanager\n            password: "+token)

	alert := firingSince(time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond))
	am.post(alert("DiskFull", "db-1"))
	run.waitHandled(60*time.Second, "db-1/firing")

	if code := ing.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("ingest exit %d after SIGTERM\n%s", code, strings.Join(ing.stderr.snapshot(), "\n"))
	}
	am.post(alert("DiskFull", "db-2"), alert("NodeDown", "db-3"))
	// Alertmanager tried, failed and tried again while ingest was down.
	am.waitWebhookFailures(60*time.Second, 2)
	if h := handled(run.stdout.snapshot()); h["db-2/firing"]+h["db-3/firing"] != 0 {
		t.Fatalf("handled while ingest was down: %v", h)
	}

	startIngest()
	run.waitHandled(90*time.Second, "db-2/firing", "db-3/firing")
	// Resolve them all, through the same door.
	end := time.Now().UTC().Add(-time.Second)
	resolved := []amAlert{alert("DiskFull", "db-1"), alert("DiskFull", "db-2"), alert("NodeDown", "db-3")}
	for i := range resolved {
		resolved[i].EndsAt = end
	}
	am.post(resolved...)
	run.waitHandled(60*time.Second, "db-1/resolved", "db-2/resolved", "db-3/resolved")
	checkOnce(t, run, "db-1/firing", "db-2/firing", "db-3/firing", "db-1/resolved", "db-2/resolved", "db-3/resolved")
}

// TestAlertmanagerRetriesWhileNATSDown: `reactor ingest` stays up while the
// NATS server behind it is down; it answers 503, Alertmanager retries, and
// once the server is back every alert is stored and handled once.
func TestAlertmanagerRetriesWhileNATSDown(t *testing.T) {
	t.Parallel()
	const token = "nats-down-S3cret"
	dataDir := t.TempDir()
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	run := startRun(t, dataDir, "--listen", listen)
	ing := startProc(t, nil, nil, "reactor: ready:", "ingest", "--http", "127.0.0.1:0", "--url", run.url,
		"--http-token", token, "--metrics", "127.0.0.1:0", "--log-format", "json")
	am := startAlertmanager(t, ing.ingestURL()+"/v1/alertmanager",
		"          authorization:\n            type: Bearer\n            credentials: "+token)

	alert := firingSince(time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond))
	am.post(alert("DiskFull", "db-1"))
	run.waitHandled(60*time.Second, "db-1/firing")
	if code := run.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("run exit %d after SIGTERM", code)
	}

	am.post(alert("DiskFull", "db-2"))
	am.waitWebhookFailures(60*time.Second, 2)
	if text := scrape(t, ing); !strings.Contains(text, `reactor_ingest_requests_total{code="503",endpoint="alertmanager"}`) {
		t.Errorf("ingest counted no 503 while NATS was down:\n%s", text)
	}
	ing.waitStderr(10*time.Second, `"code":503`)

	run = startRun(t, dataDir, "--listen", listen)
	run.waitHandled(90*time.Second, "db-2/firing")
	stored := make(map[string]int)
	for _, a := range storedAlerts(t, run.url) {
		stored[a.Labels["host"]+"/"+a.Status]++
	}
	if len(stored) != 2 || stored["db-1/firing"] != 1 || stored["db-2/firing"] != 1 {
		t.Errorf("stored %v, want db-1/firing and db-2/firing once each", stored)
	}
	if h := handled(run.stdout.snapshot()); h["db-2/firing"] != 1 || h["db-1/firing"] != 0 {
		t.Errorf("the restarted run handled %v, want db-2/firing once (db-1 was handled before)", h)
	}
}
