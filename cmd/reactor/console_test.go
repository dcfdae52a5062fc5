package main

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The console on run's HTTP listener: behind the token, actions refused
// from another origin, and no page shows a credential.
func TestConsoleBehindToken(t *testing.T) {
	t.Parallel()
	const token, natsPassword = "S3cret-console-token", "S3cret-nats-pw"
	run := startRun(t, "", "--http", "127.0.0.1:0", "--http-token", token, "--user", "ops", "--password", natsPassword)
	base := run.ingestURL()
	run.waitStderr(10*time.Second, "web console on "+base+"/")
	mustReactor(t, "", "send", "--url", run.url, "--user", "ops", "--password", natsPassword, "--on", "cpu", "hot")
	run.waitIDs(10*time.Second, 1)

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, header http.Header, auth bool) (int, string) {
		t.Helper()
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(url.Values{}.Encode())
		}
		req, err := http.NewRequest(method, base+path, body)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if auth {
			req.SetBasicAuth("anyone", token) // what a browser sends
		}
		resp, err := client.Do(req)
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

	if code, _ := do(http.MethodGet, "/", nil, false); code != http.StatusUnauthorized {
		t.Errorf("overview without the token: %d, want 401", code)
	}
	for _, path := range []string{"/", "/alerts", "/alerts/1", "/dlq", "/groups", "/static/console.css"} {
		code, body := do(http.MethodGet, path, nil, true)
		if code != http.StatusOK {
			t.Errorf("GET %s with the token: %d\n%s", path, code, body)
		}
		for _, secret := range []string{token, natsPassword, "ops:", "ops@"} {
			if strings.Contains(body, secret) {
				t.Errorf("GET %s shows a credential (%q)", path, secret)
			}
		}
	}

	paused := func() bool {
		_, body := do(http.MethodGet, "/groups", nil, true)
		return strings.Contains(body, `<span class="badge warn">paused`)
	}
	pause := "/groups/reactor/pause"
	if code, _ := do(http.MethodPost, pause, nil, false); code != http.StatusUnauthorized {
		t.Errorf("pause without the token: %d, want 401", code)
	}
	for _, h := range []http.Header{{"Origin": {"http://evil.example"}}, {"Sec-Fetch-Site": {"cross-site"}}} {
		if code, _ := do(http.MethodPost, pause, h, true); code != http.StatusForbidden {
			t.Errorf("pause with the token from another origin (%v): %d, want 403", h, code)
		}
	}
	if paused() {
		t.Fatal("a refused action paused the group")
	}
	if code, _ := do(http.MethodPost, pause, http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {base}}, true); code != http.StatusSeeOther {
		t.Fatalf("pause with the token from the console's page: %d, want 303", code)
	}
	if !paused() {
		t.Error("the group is not paused")
	}
	run.waitStderr(10*time.Second, `"msg":"group paused","component":"console","consumer":"reactor"`)
	run.waitStderr(10*time.Second, "group paused: no alerts are delivered")
	if strings.Contains(strings.Join(run.stderr.snapshot(), "\n"), token) {
		t.Error("the log shows the token")
	}
}
