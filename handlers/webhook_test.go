package handlers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// received is one request as the test server saw it.
type received struct {
	header http.Header
	body   []byte
	path   string
	user   string
	pass   string
}

// hookServer answers every request with reply and sends what it received on
// the returned channel.
func hookServer(t *testing.T, reply func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, <-chan received) {
	t.Helper()
	got := make(chan received, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		user, pass, _ := r.BasicAuth()
		got <- received{header: r.Header.Clone(), body: body, path: r.URL.RequestURI(), user: user, pass: pass}
		reply(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func status(code int, header ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, http.StatusText(code))
	}
}

func TestWebhookPostsAlert(t *testing.T) {
	t.Parallel()
	srv, got := hookServer(t, status(http.StatusNoContent))
	w := &Webhook{
		URL:     srv.URL + "/hook",
		Headers: map[string]string{"Authorization": "Bearer tok", "X-Team": "ops"},
		Client:  srv.Client(),
	}
	data := `{"id":"a1","severity":"critical","summary":"terminator detected"}`
	if err := w.Process(context.Background(), message("alerts.terminator_detected", data)); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.path != "/hook" {
		t.Errorf("path %q", r.path)
	}
	for k, want := range map[string]string{
		"Content-Type": "application/json", "Authorization": "Bearer tok", "X-Team": "ops",
		"Idempotency-Key": "a1", "User-Agent": "reactor",
	} {
		if v := r.header.Get(k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	var a stream.Alert
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("body is not an alert: %v: %q", err, r.body)
	}
	streamtest.AssertAlert(t, a, stream.Alert{ID: "a1", Name: "terminator_detected", Subject: "alerts.terminator_detected",
		Severity: "critical", Summary: "terminator detected", Timestamp: fixedTime})
}

func TestWebhookClassification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		reply     func(http.ResponseWriter, *http.Request)
		wantNil   bool
		wantPerm  bool
		wantRetry time.Duration // a *processor.RetryError with this delay
		want      string
	}{
		{name: "200", reply: status(200), wantNil: true},
		{name: "500 is retried", reply: status(500), want: `status 500 Internal Server Error; body: "Internal Server Error"`},
		{name: "502 is retried", reply: status(502), want: "status 502 Bad Gateway"},
		{name: "408 is retried", reply: status(408), want: "status 408"},
		{name: "404 is permanent", reply: status(404), wantPerm: true, want: "status 404 Not Found"},
		{name: "400 is permanent", reply: status(400), wantPerm: true, want: "status 400"},
		{name: "429 with Retry-After", reply: status(429, "Retry-After", "7"), wantRetry: 7 * time.Second, want: "status 429"},
		{name: "503 with Retry-After", reply: status(503, "Retry-After", "120"), wantRetry: 2 * time.Minute},
		{name: "Retry-After is capped", reply: status(429, "Retry-After", "86400"), wantRetry: time.Hour},
		{name: "429 without Retry-After", reply: status(429), want: "status 429 Too Many Requests"},
		{name: "429 with a bad Retry-After", reply: status(429, "Retry-After", "soon"), want: "status 429"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := hookServer(t, tt.reply)
			w := &Webhook{URL: srv.URL, Client: srv.Client()}
			err := w.Process(context.Background(), message("alerts.x", "s"))
			if tt.wantNil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			var perm *processor.PermanentError
			var retry *processor.RetryError
			if errors.As(err, &perm) != tt.wantPerm {
				t.Errorf("error %q: permanent = %v, want %v", err, !tt.wantPerm, tt.wantPerm)
			}
			if isRetry := errors.As(err, &retry); isRetry != (tt.wantRetry > 0) || (isRetry && retry.After != tt.wantRetry) {
				t.Errorf("error %q: want a retry after %s", err, tt.wantRetry)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"30", 30 * time.Second, true},
		{" 30 ", 30 * time.Second, true},
		{"0", 0, false},
		{"-5", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, false},
		{"999999", time.Hour, true},
		{"tomorrow", 0, false},
	}
	for _, tt := range tests {
		got, ok := retryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("retryAfter(%q) = %s, %v; want %s, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestWebhookKeepsSecretsOutOfErrors(t *testing.T) {
	t.Parallel()
	secrets := []string{"hunter2", "s3cret-user", "bearer-s3cret", "query-s3cret", "key-s3cret"}
	// The server echoes the credentials it received, as debugging endpoints do.
	echo := func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "rejected "+r.Header.Get("Authorization")+" "+r.Header.Get("X-Api-Key")+" "+r.URL.RawQuery)
	}
	release := make(chan struct{})
	slow := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so the server notices the client hanging up
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
	slowURL := srvURL(t, slow)
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	for _, tc := range []struct {
		name    string
		url     string
		timeout time.Duration
		wantIs  error
	}{
		{name: "error status echoing credentials", url: srvURL(t, echo)},
		{name: "timeout", url: slowURL, timeout: 100 * time.Millisecond, wantIs: context.DeadlineExceeded},
		{name: "connection refused", url: closed.URL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := strings.Replace(tc.url, "http://", "http://s3cret-user:hunter2@", 1) + "/hook?token=query-s3cret"
			w := &Webhook{
				URL:     u,
				Headers: map[string]string{"Authorization": "Bearer bearer-s3cret", "X-Api-Key": "key-s3cret"},
				Timeout: tc.timeout,
				Client:  &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
			}
			err := w.Process(context.Background(), message("alerts.x", "s"))
			if err == nil {
				t.Fatal("no error")
			}
			t.Logf("error: %v", err)
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %q does not wrap %v", err, tc.wantIs)
			}
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q reveals %q", err, s)
				}
			}
			if !strings.Contains(err.Error(), "/hook?token=REDACTED") {
				t.Errorf("error %q does not name the redacted URL", err)
			}
		})
	}
}

// A server may echo parts of the credentials: the token of an
// "ApiKey <token>" header on its own, or the Authorization header net/http
// builds from the URL's user information.
func TestWebhookKeepsEchoedCredentialsOutOfErrors(t *testing.T) {
	t.Parallel()
	echo := func(w http.ResponseWriter, r *http.Request) {
		key := strings.Fields(r.Header.Get("X-Api-Key"))
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, "unknown key "+key[len(key)-1]+"; got "+r.Header.Get("Authorization"))
	}
	w := &Webhook{
		URL:     strings.Replace(srvURL(t, echo), "http://", "http://s3cret-user:hunter2@", 1),
		Headers: map[string]string{"X-Api-Key": "ApiKey key-s3cret"},
	}
	err := w.Process(context.Background(), message("alerts.x", "s"))
	if err == nil {
		t.Fatal("no error")
	}
	basic := base64.StdEncoding.EncodeToString([]byte("s3cret-user:hunter2"))
	for _, s := range []string{"key-s3cret", basic} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q reveals %q", err, s)
		}
	}
	if !strings.Contains(err.Error(), "unknown key REDACTED; got Basic REDACTED") {
		t.Errorf("error %q: want the echo with REDACTED in place of the secrets", err)
	}
}

// srvURL starts a server answering with h and returns its URL.
func srvURL(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestWebhookSendsUserInfoAsBasicAuth(t *testing.T) {
	t.Parallel()
	srv, got := hookServer(t, status(200))
	w := &Webhook{URL: strings.Replace(srv.URL, "http://", "http://bob:pw@", 1), Client: srv.Client()}
	if err := w.Process(context.Background(), message("alerts.x", "s")); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.user != "bob" || r.pass != "pw" {
		t.Errorf("basic auth = %q:%q, want bob:pw", r.user, r.pass)
	}
}

func TestWebhookInvalidConfig(t *testing.T) {
	t.Parallel()
	for _, w := range []*Webhook{
		{},
		{URL: "ftp://example.com/x"},
		{URL: "/relative"},
		{URL: "http://user:secret@%zz"},
		{URL: "http://127.0.0.1/", Headers: map[string]string{"Bad Name": "v"}},
	} {
		err := w.Process(context.Background(), message("alerts.x", "s"))
		var perm *processor.PermanentError
		if !errors.As(err, &perm) {
			t.Errorf("Webhook{URL: %q}: %v, want a permanent error", w.URL, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error %q reveals the URL's password", err)
		}
	}
}
