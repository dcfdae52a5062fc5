package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/embedded"
	"github.com/reactor-alerts/reactor/stream/ingest"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// TestBadBodies sends what senders get wrong: each gets its status and a
// JSON error naming the problem, and nothing of it is stored.
func TestBadBodies(t *testing.T) {
	t.Parallel()
	const limit = 2048
	b := setup(t, ingest.Config{MaxBodyBytes: limit})
	am := fixture(t, "alertmanager.json")
	tests := []struct {
		name, path, ctype, body string
		code                    int
		want                    string // substring of the error
	}{
		{"truncated JSON", ingest.PathAlertmanager, "application/json", am[:len(am)/2], 400, "malformed JSON: unexpected end of input"},
		{"syntax error", ingest.PathAlertmanager, "application/json", `{"version":"4",}`, 400, "malformed JSON at byte 16"},
		{"trailing data", ingest.PathAlertmanager, "application/json", am + "}", 400, "trailing data after the JSON object"},
		{"empty body", ingest.PathAlertmanager, "application/json", "", 400, "empty body"},
		{"wrong version", ingest.PathAlertmanager, "application/json", strings.Replace(am, `"version": "4"`, `"version": "3"`, 1), 400, `unsupported payload version "3": want "4"`},
		{"no version", ingest.PathAlertmanager, "application/json", `{"alerts":[]}`, 400, `unsupported payload version ""`},
		{"no alerts array", ingest.PathGrafana, "application/json", `{"version":"1","receiver":"r"}`, 400, `no "alerts" array`},
		{"grafana without version", ingest.PathGrafana, "application/json", `{"alerts":[]}`, 400, `unsupported payload version "": want "1"`},
		{"grafana wrong version", ingest.PathGrafana, "application/json", `{"version":"999","alerts":[]}`, 400, `unsupported payload version "999": want "1"`},
		{"empty alerts", ingest.PathAlertmanager, "application/json", `{"version":"4","alerts":[]}`, 400, "no alerts in the request"},
		{"alert without labels", ingest.PathAlertmanager, "application/json",
			`{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"A"},"startsAt":"2026-01-02T03:04:05Z"},{"status":"firing","labels":{},"startsAt":"2026-01-02T03:04:05Z"}]}`,
			400, "alert 2: no labels"},
		{"bad status", ingest.PathGrafana, "application/json", `{"version":"1","alerts":[{"status":"pending","labels":{"alertname":"A"}}]}`, 400, `alert 1: status "pending": want firing or resolved`},
		{"bad time", ingest.PathAlertmanager, "application/json", `{"version":"4","alerts":[{"status":"firing","labels":{"a":"b"},"startsAt":"yesterday"}]}`, 400, "not RFC 3339"},
		{"wrong type", ingest.PathAlertmanager, "application/json", `{"version":4}`, 400, `field "version": cannot use a JSON number as string`},
		{"oversized", ingest.PathAlertmanager, "application/json", `{"version":"4","alerts":[` + strings.Repeat(" ", limit) + `]}`, 413, "body larger than 2048 bytes"},
		{"wrong content type", ingest.PathAlertmanager, "text/plain", am, 415, `Content-Type "text/plain": want application/json`},
		{"form content type (curl -d)", ingest.PathAlerts, "application/x-www-form-urlencoded", `{"name":"a"}`, 415, "want application/json"},
		{"no content type", ingest.PathAlerts, "", `{"name":"a"}`, 415, "no Content-Type"},
		{"own alert without subject or name", ingest.PathAlerts, "application/json", `[{"name":"a"},{"summary":"s"}]`, 400, `alert 2: decode alert: alert has neither "subject" nor "name"`},
		{"own alert outside alerts.", ingest.PathAlerts, "application/json", `{"subject":"ops.x"}`, 400, `subject "ops.x": want alerts.<name>`},
		{"own alert unknown field", ingest.PathAlerts, "application/json", `{"name":"a","sevrity":"critical"}`, 400, `alert 1: decode alert: unknown field "sevrity"`},
		{"own alert bad severity", ingest.PathAlerts, "application/x-ndjson", "{\"name\":\"a\"}\n{\"name\":\"b\",\"severity\":\"urgent\"}", 400, `alert 2: decode alert: invalid severity "urgent"`},
		{"own alerts truncated", ingest.PathAlerts, "application/x-ndjson", "{\"name\":\"a\"}\n{\"name\":", 400, "alert 2: malformed JSON"},
		{"own alert not an object", ingest.PathAlerts, "application/json", `["disk full"]`, 400, "alert 1: decode alert: want a JSON object"},
		{"unknown endpoint", "/v1/prometheus", "application/json", `{}`, 404, "no endpoint /v1/prometheus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.post(t, tt.path, tt.ctype, tt.body)
			checkError(t, r, tt.code, tt.want)
		})
	}

	t.Run("oversized without Content-Length", func(t *testing.T) {
		body := io.MultiReader(strings.NewReader(`{"version":"4","alerts":[`), bytes.NewReader(bytes.Repeat([]byte(" "), limit)), strings.NewReader("]}"))
		req, err := http.NewRequest(http.MethodPost, b.srv.URL+ingest.PathAlertmanager, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if req.ContentLength != 0 {
			t.Fatalf("Content-Length %d set, want a chunked body", req.ContentLength)
		}
		checkError(t, do(t, req), 413, "body larger than 2048 bytes")
	})
	t.Run("GET", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, b.srv.URL+ingest.PathGrafana, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := do(t, req)
		checkError(t, r, 405, "only POST")
		if r.hdr.Get("Allow") != http.MethodPost {
			t.Errorf("Allow %q, want POST", r.hdr.Get("Allow"))
		}
	})

	if got := b.stored(t); len(got) != 0 {
		t.Errorf("%d alerts stored from bad requests: %+v", len(got), got)
	}
}

func checkError(t *testing.T, r reply, code int, want string) {
	t.Helper()
	var e ingest.ErrorResponse
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("status %d, body %q is not a JSON error: %v", r.code, r.body, err)
	}
	if r.code != code || !strings.Contains(e.Error, want) {
		t.Errorf("status %d, error %q; want %d and %q", r.code, e.Error, code, want)
	}
	if ct := r.hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
}

// TestStoreFailures: when the alerts cannot be stored the answer is 503, so
// that the sender retries, and never 2xx.
func TestStoreFailures(t *testing.T) {
	t.Parallel()
	am := fixture(t, "alertmanager.json")

	t.Run("no stream", func(t *testing.T) {
		t.Parallel()
		b := serve(t, streamtest.NewServer(t), ingest.Config{StoreTimeout: 2 * time.Second})
		r := b.post(t, ingest.PathAlertmanager, "application/json", am)
		checkError(t, r, 503, "no stream stores them yet")
		if r.hdr.Get("Retry-After") == "" {
			t.Error("no Retry-After on a 503")
		}
	})

	t.Run("server down", func(t *testing.T) {
		t.Parallel()
		srv, err := embedded.Start(embedded.Config{DataDir: t.TempDir(), Port: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		b := serve(t, connect(t, srv.ClientURL()), ingest.Config{StoreTimeout: 500 * time.Millisecond})
		decodeResponse(t, b.post(t, ingest.PathAlertmanager, "application/json", am))
		srv.Shutdown()
		r := b.post(t, ingest.PathAlertmanager, "application/json", strings.ReplaceAll(am, "2026-11-30T08", "2026-11-30T09"))
		checkError(t, r, 503, "store alerts")
		b2 := serve(t, b.conn, ingest.Config{StoreTimeout: time.Minute, Connected: b.conn.NC.IsConnected})
		streamtest.Eventually(t, 10*time.Second, func() error {
			if b.conn.NC.IsConnected() {
				return errors.New("still connected")
			}
			return nil
		}, "client to see the server down")
		checkError(t, b2.post(t, ingest.PathAlertmanager, "application/json", am), 503, "store alerts: ingest: not connected to NATS")
		if n := testutil.ToFloat64(metricVec(b.reg, "reactor_ingest_requests_total", map[string]string{"endpoint": "alertmanager", "code": "503"})); n != 1 {
			t.Errorf("requests{code=503} = %v, want 1", n)
		}
	})
}

// connect opens a client connection to url and creates the alert streams.
func connect(t *testing.T, url string) *stream.Conn {
	t.Helper()
	conn := streamtest.Connect(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := stream.EnsureStreams(ctx, conn.JS, stream.Topology{}.WithDefaults()); err != nil {
		t.Fatal(err)
	}
	return conn
}
