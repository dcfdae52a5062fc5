package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

var httpURL = regexp.MustCompile(`HTTP ingest on (http://127\.0\.0\.1:\d+)/v1/`)

// ingestURL is the HTTP ingest base URL p announced on stderr.
func (p *runProc) ingestURL() string {
	p.t.Helper()
	p.waitStderr(10*time.Second, "HTTP ingest on http")
	for _, l := range p.stderr.snapshot() {
		if m := httpURL.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	p.t.Fatalf("no HTTP URL on stderr:\n%s", strings.Join(p.stderr.snapshot(), "\n"))
	return ""
}

// post sends body to url with the Authorization header auth (none if
// empty) and returns the status and the body of the answer.
func post(t *testing.T, url, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(data)
}

// storedAlerts returns every alert in the stream of the alert subjects of
// the server at url, in order.
func storedAlerts(t *testing.T, url string) []stream.Alert {
	t.Helper()
	var out []stream.Alert
	for _, m := range streamtest.StoredMsgs(t, streamtest.Connect(t, url).JS, "alerts.x") {
		a, err := stream.DecodeAlert(m.Subject, m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", m.Sequence, err)
		}
		out = append(out, a)
	}
	return out
}

func TestIngestToken(t *testing.T) {
	t.Parallel()
	const token = "S3cret-ingest"
	run := startRun(t, "", "--http", "127.0.0.1:0", "--http-token", token, "--metrics", "127.0.0.1:0")
	url := run.ingestURL() + "/v1/alerts"
	basic := func(user, pass string) string {
		req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
		req.SetBasicAuth(user, pass)
		return req.Header.Get("Authorization")
	}
	for _, tc := range []struct {
		name, auth string
		code       int
		want       string
	}{
		{"no token", "", 401, "no token"},
		{"wrong bearer", "Bearer wrong-token", 401, "wrong token (Bearer)"},
		{"wrong basic", basic("alertmanager", "wrong-token"), 401, "wrong token (basic auth"},
		{"other scheme", "Digest x", 401, "unsupported Authorization scheme"},
		{"bearer", "Bearer " + token, 200, `"stored":1`},
		{"basic", basic("alertmanager", token), 200, `"stored":1`},
	} {
		code, body := post(t, url, tc.auth, `{"name":"disk_full","summary":"`+tc.name+`","status":"firing"}`)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d and %q", tc.name, code, body, tc.code, tc.want)
		}
	}
	run.waitIDs(10*time.Second, 2)
	out := strings.Join(run.stdout.snapshot(), "\n")
	if !strings.Contains(out, " alerts.disk_full bearer ") || !strings.Contains(out, " status=firing") {
		t.Errorf("stdout lacks the stored alerts with their status:\n%s", out)
	}
	if got := storedAlerts(t, run.url); len(got) != 2 {
		t.Errorf("%d alerts stored, want only the 2 with the token: %+v", len(got), got)
	}
	run.waitFor(5*time.Second, run.stderr, func(ls []string) bool {
		return strings.Count(strings.Join(ls, "\n"), "http request rejected") == 4
	}, "one log line per rejected request")
	if errs := strings.Join(run.stderr.snapshot(), "\n"); strings.Contains(errs, token) || strings.Contains(errs, "wrong-token") {
		t.Errorf("a token shows on stderr:\n%s", errs)
	}
	// run's metrics count ingest too, on the processor's registry.
	text := scrape(t, run)
	requireMetrics(t, text,
		`reactor_ingest_requests_total{code="401",endpoint="alerts"} 4`,
		`reactor_ingest_requests_total{code="200",endpoint="alerts"} 2`,
		`reactor_ingest_alerts_total{endpoint="alerts",result="stored"} 2`,
		`reactor_alerts_handled_total{entry="alerts.>",outcome="ok"} 2`,
	)
	if code := run.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
}

func TestIngestRefusals(t *testing.T) {
	t.Parallel()
	url := closedURL(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ingest", "--http", "0.0.0.0:0", "--url", url}, exitUsage, "refusing to serve HTTP on 0.0.0.0:0 without a token: set --http-token"},
		{[]string{"run", "--http", ":0", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir()}, exitUsage, "refusing to serve HTTP on :0 without a token"},
		{[]string{"ingest", "--http", "127.0.0.1:0", "--http-tls-cert", "c.pem", "--url", url}, exitUsage, "--http-tls-cert and --http-tls-key go together"},
		{[]string{"ingest", "--http", "8080", "--url", url}, exitUsage, `bad --http "8080": want host:port`},
		{[]string{"ingest", "--http", "127.0.0.1:0", "--url", url}, exitFailure, "no NATS server at"},
	} {
		r := reactor(t, "", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("reactor %s: exit %d, stderr %q; want %d and %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, tc.want)
		}
	}
}

// TestIngestAlone: `reactor ingest` in front of the NATS server of a
// `reactor run`, with metrics, and a graceful stop.
func TestIngestAlone(t *testing.T) {
	t.Parallel()
	run := startRun(t, "")
	ing := startProc(t, nil, nil, "reactor: ready:", "ingest", "--http", "127.0.0.1:0", "--url", run.url, "--metrics", "127.0.0.1:0", "--log-format", "json")
	base := ing.ingestURL()
	code, body := post(t, base+"/v1/alerts", "", `[{"name":"a","summary":"one"},{"name":"b","summary":"two"}]`)
	var resp struct {
		Stored int `json:"stored"`
	}
	if err := json.Unmarshal([]byte(body), &resp); code != 200 || err != nil || resp.Stored != 2 {
		t.Fatalf("POST /v1/alerts: %d %s", code, body)
	}
	if code, body := post(t, base+"/v1/alerts", "", `{"name":"a","summary":"one"`); code != 400 || !strings.Contains(body, "malformed JSON") {
		t.Errorf("truncated: %d %s, want 400", code, body)
	}
	run.waitIDs(10*time.Second, 2)

	text := scrape(t, ing)
	requireMetrics(t, text,
		`reactor_ingest_requests_total{code="200",endpoint="alerts"} 1`,
		`reactor_ingest_requests_total{code="400",endpoint="alerts"} 1`,
		`reactor_ingest_alerts_total{endpoint="alerts",result="stored"} 2`,
	)
	if code := ing.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("ingest exit %d after SIGTERM, want 0\n%s", code, strings.Join(ing.stderr.snapshot(), "\n"))
	}
	ing.waitStderr(time.Second, "reactor: stopped")
}

// TestIngestShutdownFinishesRequests: a request whose body is still coming
// when SIGTERM arrives is finished, its alert stored and answered 200,
// before the NATS connection closes; then ingest exits 0.
func TestIngestShutdownFinishesRequests(t *testing.T) {
	t.Parallel()
	run := startRun(t, "")
	ing := startProc(t, nil, nil, "reactor: ready:", "ingest", "--http", "127.0.0.1:0", "--url", run.url)
	addr := strings.TrimPrefix(ing.ingestURL(), "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"id":"in-flight-1","name":"slow_sender","summary":"sent across the shutdown"}`
	head := "POST /v1/alerts HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	// The server answers 100 Continue when the handler starts reading the
	// body: from then on the request is in flight.
	br := bufio.NewReader(c)
	cont, err := http.ReadResponse(br, nil)
	if err != nil || cont.StatusCode != http.StatusContinue {
		t.Fatalf("want 100 Continue, got %v, %v", cont, err)
	}
	half := len(body) / 2
	if _, err := io.WriteString(c, body[:half]); err != nil {
		t.Fatal(err)
	}
	if err := ing.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ing.waitStderr(10*time.Second, "reactor: stopping: finishing requests in flight")
	if _, err := io.WriteString(c, body[half:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("answer to the request in flight: %v", err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(data), `"id":"in-flight-1"`) {
		t.Errorf("request in flight answered %d %s, want 200 with its id", resp.StatusCode, data)
	}
	select {
	case <-ing.done:
	case <-time.After(30 * time.Second):
		t.Fatal("ingest did not exit after the request finished")
	}
	if code := ing.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("ingest exit %d, want 0\n%s", code, strings.Join(ing.stderr.snapshot(), "\n"))
	}
	if ids := run.waitIDs(10*time.Second, 1); ids["in-flight-1"] != 1 {
		t.Errorf("handled %v, want in-flight-1 once", ids)
	}
}

var metricsURL = regexp.MustCompile(`metrics on (http://\S+/metrics)`)

// scrape returns the metrics p serves (--metrics), as text.
// requireMetrics fails the test for each of wants that the metrics text
// lacks.
func requireMetrics(t *testing.T, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func scrape(t *testing.T, p *runProc) string {
	t.Helper()
	var url string
	for _, l := range p.stderr.snapshot() {
		if m := metricsURL.FindStringSubmatch(l); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		t.Fatalf("no metrics URL on stderr:\n%s", strings.Join(p.stderr.snapshot(), "\n"))
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(text)
}

// TestIngestTLS: with --http-tls-cert and --http-tls-key, ingest serves
// HTTPS with that certificate.
func TestIngestTLS(t *testing.T) {
	t.Parallel()
	certPEM, keyPEM := selfSigned(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	run := startRun(t, "", "--http", "127.0.0.1:0", "--http-tls-cert", certFile, "--http-tls-key", keyFile)
	run.waitStderr(10*time.Second, "HTTP ingest on https://127.0.0.1:")
	var base string
	for _, l := range run.stderr.snapshot() {
		if m := regexp.MustCompile(`HTTP ingest on (https://127\.0\.0\.1:\d+)/v1/`).FindStringSubmatch(l); m != nil {
			base = m[1]
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	resp, err := client.Post(base+"/v1/alerts", "application/json", strings.NewReader(`{"id":"tls-1","name":"over_tls"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST over HTTPS: %s", resp.Status)
	}
	if ids := run.waitIDs(10*time.Second, 1); ids["tls-1"] != 1 {
		t.Errorf("handled %v, want tls-1", ids)
	}
	// Plain HTTP to the TLS port is not served.
	plain := strings.Replace(base, "https://", "http://", 1)
	if resp, err := http.Post(plain+"/v1/alerts", "application/json", strings.NewReader(`{"name":"x"}`)); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP accepted on the TLS listener")
		}
	}
}

// selfSigned returns a certificate for 127.0.0.1 and its key, PEM-encoded.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "reactor test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
