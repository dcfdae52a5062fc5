package ingest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/ingest"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// bundle is one test's embedded server, with the alert streams, and an
// ingest handler served on 127.0.0.1.
type bundle struct {
	conn    *stream.Conn
	srv     *httptest.Server
	metrics *ingest.Metrics
	reg     *prometheus.Registry
}

func setup(t testing.TB, cfg ingest.Config) *bundle {
	t.Helper()
	conn, _ := streamtest.NewTopology(t)
	return serve(t, conn, cfg)
}

func serve(t testing.TB, conn *stream.Conn, cfg ingest.Config) *bundle {
	t.Helper()
	b := &bundle{conn: conn, reg: prometheus.NewRegistry()}
	b.metrics = ingest.NewMetrics(b.reg)
	cfg.Metrics = b.metrics
	b.srv = httptest.NewServer(ingest.New(stream.NewPublisher(conn.JS, stream.PublisherConfig{}), cfg))
	t.Cleanup(b.srv.Close)
	return b
}

// reply is an answer of the handler.
type reply struct {
	code int
	body string
	hdr  http.Header
}

func (b *bundle) post(t *testing.T, path, contentType, body string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{code: resp.StatusCode, body: string(data), hdr: resp.Header}
}

// stored returns the alerts in the stream that stores the alert subjects,
// in order.
func (b *bundle) stored(t *testing.T) []stream.Alert {
	t.Helper()
	var out []stream.Alert
	for _, m := range streamtest.StoredMsgs(t, b.conn.JS, "alerts.x") {
		a, err := stream.DecodeAlert(m.Subject, m.Data)
		if err != nil {
			t.Fatalf("stored message %d: %v", m.Sequence, err)
		}
		if id := m.Header.Get("Nats-Msg-Id"); id != a.ID {
			t.Errorf("message %d: Nats-Msg-Id %q, alert id %q", m.Sequence, id, a.ID)
		}
		out = append(out, a)
	}
	return out
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "ingest", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func decodeResponse(t *testing.T, r reply) ingest.Response {
	t.Helper()
	if r.code != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.code, r.body)
	}
	var resp ingest.Response
	if err := json.Unmarshal([]byte(r.body), &resp); err != nil {
		t.Fatalf("answer %q: %v", r.body, err)
	}
	return resp
}

func TestAlertmanagerPayload(t *testing.T) {
	t.Parallel()
	b := setup(t, ingest.Config{})
	body := fixture(t, "alertmanager.json")
	resp := decodeResponse(t, b.post(t, ingest.PathAlertmanager, "application/json", body))
	if resp.Stored != 2 || resp.Duplicates != 0 {
		t.Fatalf("answer %+v, want 2 stored, no duplicates", resp)
	}
	got := b.stored(t)
	if len(got) != 2 {
		t.Fatalf("%d alerts stored, want 2", len(got))
	}
	firing, resolved := got[0], got[1]
	checks := []struct{ what, got, want string }{
		{"subject", firing.Subject, "alerts.DiskFull"},
		{"name", firing.Name, "DiskFull"},
		{"severity", firing.Severity, stream.SeverityCritical},
		{"summary (annotation)", firing.Summary, "disk 95% on db-3"},
		{"status", firing.Status, stream.StatusFiring},
		{"source", firing.Source, "http://prometheus.example.com/graph?g0.expr=disk"},
		{"label", firing.Labels["host"], "db-3"},
		{"annotation", firing.Annotations["runbook"], "https://runbooks.example.com/disk"},
		{"timestamp", firing.Timestamp.Format(time.RFC3339Nano), "2026-11-30T08:00:00.123456789Z"},
		{"firing ends_at", firing.EndsAt.String(), time.Time{}.String()},
		{"resolved status", resolved.Status, stream.StatusResolved},
		{"resolved severity", resolved.Severity, stream.SeverityWarning},
		{"summary (description)", resolved.Summary, "disk 91% on db-4"},
		{"resolved ends_at", resolved.EndsAt.Format(time.RFC3339), "2026-11-30T08:01:00Z"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if firing.ID == resolved.ID || !strings.HasPrefix(firing.ID, "alertmanager-") {
		t.Errorf("ids %q, %q: want distinct alertmanager-... ids", firing.ID, resolved.ID)
	}

	// Alertmanager retries a notification it got no 2xx for: stored once.
	again := decodeResponse(t, b.post(t, ingest.PathAlertmanager, "application/json; charset=utf-8", body))
	if again.Stored != 0 || again.Duplicates != 2 {
		t.Errorf("retry answered %+v, want 0 stored and 2 duplicates", again)
	}
	if n := len(b.stored(t)); n != 2 {
		t.Errorf("%d alerts stored after the retry, want 2", n)
	}
	// The same alert resolved is another notification: stored.
	resolvedToo := strings.Replace(body, `"status": "firing",
      "labels": {"alertname": "DiskFull", "host": "db-3"`, `"status": "resolved",
      "labels": {"alertname": "DiskFull", "host": "db-3"`, 1)
	if resolvedToo == body {
		t.Fatal("fixture changed: cannot resolve the firing alert")
	}
	third := decodeResponse(t, b.post(t, ingest.PathAlertmanager, "application/json", resolvedToo))
	if third.Stored != 1 || third.Duplicates != 1 {
		t.Errorf("resolution answered %+v, want 1 new and 1 duplicate", third)
	}
	if n := testutil.ToFloat64(b.metricAlerts("alertmanager", "stored")); n != 3 {
		t.Errorf("reactor_ingest_alerts_total{stored} = %v, want 3", n)
	}
	if n := testutil.ToFloat64(b.metricAlerts("alertmanager", "duplicate")); n != 3 {
		t.Errorf("reactor_ingest_alerts_total{duplicate} = %v, want 3", n)
	}
}

func (b *bundle) metricAlerts(endpoint, result string) prometheus.Collector {
	return metricVec(b.reg, "reactor_ingest_alerts_total", map[string]string{"endpoint": endpoint, "result": result})
}

// metricVec gathers reg's metric name with these labels as a collector
// testutil can read.
func metricVec(reg *prometheus.Registry, name string, labels map[string]string) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "probe"}, func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			return -1
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		metrics:
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
						continue metrics
					}
				}
				return m.GetCounter().GetValue()
			}
		}
		return 0
	})
}

func TestGrafanaPayloads(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"grafana-values.json", "grafana-valuestring.json"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			b := setup(t, ingest.Config{})
			resp := decodeResponse(t, b.post(t, ingest.PathGrafana, "application/json", fixture(t, file)))
			if resp.Stored != 2 {
				t.Fatalf("answer %+v, want 2 stored", resp)
			}
			got := b.stored(t)
			if len(got) != 2 {
				t.Fatalf("%d stored, want 2", len(got))
			}
			a := got[0]
			checks := []struct{ what, got, want string }{
				{"subject", a.Subject, "alerts.High_memory_usage"},
				{"name", a.Name, "High_memory_usage"},
				{"alertname label kept", a.Labels["alertname"], "High memory usage"},
				{"summary", a.Summary, "This alert was triggered for zone us-1"},
				{"status", a.Status, stream.StatusFiring},
				{"severity without label", a.Severity, stream.SeverityWarning},
				{"source", a.Source, "https://play.grafana.org/alerting/1afz29v7z/edit"},
				{"silence URL", a.Annotations["silenceURL"], "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1"},
				{"timestamp", a.Timestamp.Format(time.RFC3339Nano), "2021-10-12T07:51:03.157076Z"},
				{"second subject", got[1].Subject, "alerts.High_CPU_usage"},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
				}
			}
			if _, ok := a.Annotations["dashboardURL"]; ok || !a.EndsAt.IsZero() {
				t.Errorf("empty dashboardURL kept or zero endsAt taken: %+v", a)
			}
			if !strings.HasPrefix(a.ID, "grafana-") {
				t.Errorf("id %q, want grafana-...", a.ID)
			}
		})
	}
}

func TestOwnAlerts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		ctype string
		body  string
		want  []string // subjects
	}{
		{"one object", "application/json", `{"name":"disk_full","summary":"disk 95% on db-3"}`, []string{"alerts.disk_full"}},
		{"pretty object", "application/json", "{\n  \"subject\": \"alerts.db.lag\",\n  \"summary\": \"lag\"\n}\n", []string{"alerts.db.lag"}},
		{"array", "application/json", `[{"name":"a"},{"subject":"alerts.b","severity":"critical"}]`, []string{"alerts.a", "alerts.b"}},
		{"NDJSON", "application/x-ndjson", "{\"name\":\"a\"}\n\n{\"name\":\"b\",\"status\":\"resolved\"}\n{\"name\":\"c\"}\n", []string{"alerts.a", "alerts.b", "alerts.c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, ingest.Config{})
			resp := decodeResponse(t, b.post(t, ingest.PathAlerts, tt.ctype, tt.body))
			got := b.stored(t)
			if resp.Stored != len(tt.want) || len(got) != len(tt.want) {
				t.Fatalf("answer %+v, %d stored; want %d", resp, len(got), len(tt.want))
			}
			for i, a := range got {
				if a.Subject != tt.want[i] || a.ID == "" || a.Timestamp.IsZero() || resp.Alerts[i].ID != a.ID {
					t.Errorf("alert %d = %+v (answered %+v), want subject %s, an id and a time", i, a, resp.Alerts[i], tt.want[i])
				}
			}
		})
	}
}

func TestOwnAlertIDsMakeRetriesIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t, ingest.Config{})
	body := `[{"id":"page-1","name":"a"},{"id":"page-2","name":"b"}]`
	decodeResponse(t, b.post(t, ingest.PathAlerts, "application/json", body))
	resp := decodeResponse(t, b.post(t, ingest.PathAlerts, "application/json", body))
	if resp.Duplicates != 2 || len(b.stored(t)) != 2 {
		t.Errorf("retry: %+v, %d stored; want 2 duplicates, 2 stored", resp, len(b.stored(t)))
	}
}
