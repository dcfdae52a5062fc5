package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Issue 5, item 8, at the command line: with auth configured a client
// without credentials or with wrong ones is refused, a non-loopback listen
// without auth is refused at start, secrets appear in no output, and the
// data dir is private.

func TestAuthRequired(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		server []string   // run's flags that require auth
		right  []string   // a client's flags that pass
		wrong  [][]string // a client's flags that do not
		secret string
	}{
		{
			name:   "user and password",
			server: []string{"--user", "ops", "--password", "S3cret!"},
			right:  []string{"--user", "ops", "--password", "S3cret!"},
			wrong: [][]string{
				{"--user", "ops", "--password", "s3cret!"},
				{"--user", "root", "--password", "S3cret!"},
				{"--token", "S3cret!"},
			},
			secret: "S3cret!",
		},
		{
			name:   "token",
			server: []string{"--token", "T0ken-9f2e!"},
			right:  []string{"--token", "T0ken-9f2e!"},
			wrong: [][]string{
				{"--token", "T0ken-9f2f!"},
				{"--user", "ops", "--password", "T0ken-9f2e!"},
			},
			secret: "T0ken-9f2e!",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			run := startRun(t, "", tc.server...)
			send := func(creds []string) result {
				args := append([]string{"send", "--url", run.url}, creds...)
				return reactor(t, "", append(args, "--on", "auth", "who goes there")...)
			}
			refused := func(what string, r result, want string) {
				t.Helper()
				if r.code != exitFailure || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
					!strings.HasPrefix(r.stderr, "reactor: the NATS server at "+run.url+" "+want) {
					t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and one line %q", what, r.code, r.stdout, r.stderr, "reactor: the NATS server at "+run.url+" "+want+"...")
				}
				if strings.Contains(r.stderr, tc.secret) {
					t.Errorf("%s: the secret in the error: %q", what, r.stderr)
				}
			}
			refused("send without credentials", send(nil), "requires credentials: give --user and --password, --token")
			for _, creds := range tc.wrong {
				refused(fmt.Sprintf("send %s", strings.Join(creds, " ")), send(creds), "refused the credentials")
			}
			refused("status without credentials", reactor(t, "", "status", "--url", run.url), "requires credentials")
			refused("run --url with wrong credentials", reactor(t, "", append([]string{"run", "--url", run.url}, tc.wrong[0]...)...), "refused the credentials")

			r := send(tc.right)
			if r.code != 0 || !strings.HasPrefix(r.stdout, "stored alerts.auth seq=1 id=") {
				t.Fatalf("send with the right credentials: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			run.waitIDs(10*time.Second, 1)
			// The refused sends stored nothing.
			st := mustReactor(t, "", append([]string{"status", "--url", run.url, "--json"}, tc.right...)...)
			var status struct {
				Alerts struct{ Messages int } `json:"alerts"`
			}
			if err := json.Unmarshal([]byte(st.stdout), &status); err != nil || status.Alerts.Messages != 1 {
				t.Errorf("the alert stream holds %d alerts (%v), want the 1 sent with credentials", status.Alerts.Messages, err)
			}
		})
	}
}

// An embedded server reachable from other machines must require auth: run
// refuses at start, as a usage error, before it creates anything or
// listens.
func TestRunRefusesPublicListenWithoutAuth(t *testing.T) {
	t.Parallel()
	port := strconv.Itoa(freePort(t))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "0.0.0.0:0"}, "reactor: refusing to listen on 0.0.0.0:0 without auth: set --user and --password (or --token) to require it, or listen on 127.0.0.1"},
		{[]string{"--listen", "0.0.0.0:" + port}, "reactor: refusing to listen on 0.0.0.0:" + port + " without auth"},
		{[]string{"--listen", "[::]:" + port}, "reactor: refusing to listen on [::]:" + port + " without auth"},
		{[]string{"--listen", "192.0.2.1:" + port}, "reactor: refusing to listen on 192.0.2.1:" + port + " without auth"},
		// nats-server ignores a password without a user: the server would
		// be open.
		{[]string{"--listen", "0.0.0.0:" + port, "--password", "S3cret!"}, "reactor: --user and --password go together"},
		{[]string{"--listen", "127.0.0.1:" + port, "--password", "S3cret!"}, "reactor: --user and --password go together"},
		{[]string{"--listen", "0.0.0.0:" + port, "--user", "ops"}, "reactor: --user and --password go together"},
	} {
		dataDir := filepath.Join(t.TempDir(), "data")
		args := append([]string{"run", "--data-dir", dataDir}, tc.args...)
		start := time.Now()
		r := reactor(t, "", args...)
		name := strings.Join(tc.args, " ")
		if r.code != exitUsage || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, tc.want) {
			t.Errorf("run %s: exit %d, stdout %q, stderr %q; want exit 2 and one line %q...", name, r.code, r.stdout, r.stderr, tc.want)
		}
		if strings.Contains(r.stderr, "S3cret!") {
			t.Errorf("run %s: the password in the error: %q", name, r.stderr)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("run %s took %s to refuse", name, d)
		}
		if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
			t.Errorf("run %s created its data dir before refusing (%v)", name, err)
		}
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
			c.Close()
			t.Errorf("run %s: something listens on port %s", name, port)
		}
	}
}

// Secrets (the server's password, a webhook's token from the environment
// and the password in its URL, an external server's URL with user info)
// appear in no output: not in the logs at debug level, not in the errors of
// failing webhooks (even when the webhook echoes them), not in status, not
// in the dead letters.
func TestSecretsNeverAppear(t *testing.T) {
	t.Parallel()
	const (
		natsPassword = "nats-Pw-7c1e!x"
		hookToken    = "hook-Tok-93ab"
		urlPassword  = "url-Pw-5d2f"
	)
	basic := base64.StdEncoding.EncodeToString([]byte("hookuser:" + urlPassword))
	secrets := []string{natsPassword, hookToken, urlPassword, basic, url.QueryEscape(natsPassword), url.QueryEscape(hookToken)}

	// The webhook: ok, down (500: retried, then dead-lettered) or bad (400:
	// dead-lettered at once), by subject. Its error bodies echo the
	// credentials it got, as careless servers do.
	var mu sync.Mutex
	got := map[string]int{} // subject -> requests
	var sawToken, sawBasic bool
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a struct{ Subject string }
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &a)
		user, pass, _ := r.BasicAuth()
		mu.Lock()
		got[a.Subject]++
		sawToken = sawToken || r.Header.Get("X-Api-Key") == "key "+hookToken
		sawBasic = sawBasic || (user == "hookuser" && pass == urlPassword)
		mu.Unlock()
		echo := fmt.Sprintf("rejected: token=%s, header %q, basic %s:%s, Authorization: %s",
			hookToken, r.Header.Get("X-Api-Key"), user, pass, r.Header.Get("Authorization"))
		switch a.Subject {
		case "alerts.sec.down":
			http.Error(w, echo, http.StatusInternalServerError)
		case "alerts.sec.bad":
			http.Error(w, echo, http.StatusBadRequest)
		}
	}))
	t.Cleanup(hook.Close)
	hookURL := strings.Replace(hook.URL, "http://", "http://hookuser:"+urlPassword+"@", 1) + "/alerts?team=ops"
	config := writeFile(t, "secret.yaml", fmt.Sprintf(`handlers:
  - on: "alerts.sec.>"
    print: true
    webhook:
      url: %q
      headers: {X-Api-Key: "key ${HOOK_TOKEN}"}
      timeout: 2s
  - on: "alerts.sec.refused"
    webhook: {url: "http://hookuser:%s@%s/nobody-listens", timeout: 1s}
`, hookURL, urlPassword, strings.TrimPrefix(closedURL(t), "nats://")))
	hookEnv := []string{"HOOK_TOKEN=" + hookToken}
	common := []string{"--log-level", "debug", "--log-format", "json", "--config", config,
		"--max-deliver", "2", "--backoff-base", "50ms", "--backoff-max", "100ms"}

	// The server, with a password, on a port it gets back after a restart.
	port := strconv.Itoa(freePort(t))
	dataDir := t.TempDir()
	serverArgs := append([]string{"--listen", "127.0.0.1:" + port, "--user", "ops", "--password", natsPassword}, common...)
	server := startRunWriter(t, nil, hookEnv, dataDir, serverArgs...)
	secretURL := "nats://" + url.UserPassword("ops", natsPassword).String() + "@127.0.0.1:" + port
	// A second process of the group, connected with the password in its URL.
	external := startProc(t, nil, hookEnv, "reactor: ready: connected to", append([]string{"run", "--url", secretURL}, common...)...)
	// The server restarts: the external process reconnects, and says so.
	if code := server.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("server exit code %d", code)
	}
	restarted := startRunWriter(t, nil, hookEnv, dataDir, serverArgs...)
	external.waitStderr(20*time.Second, "nats reconnected")

	byFlags := []string{"--url", restarted.url, "--user", "ops", "--password", natsPassword}
	var alerts strings.Builder
	for i, subject := range []string{"ok", "ok", "ok", "down", "down", "bad", "bad", "refused"} {
		fmt.Fprintf(&alerts, `{"subject":"alerts.sec.%s","summary":"alert %d","labels":{"n":"%d"}}`+"\n", subject, i, i)
	}
	sends := []result{
		mustReactor(t, alerts.String(), append([]string{"send", "--file", "-"}, byFlags...)...),
		mustReactor(t, "", "send", "--url", secretURL, "--on", "sec.ok", "with the password in the URL"),
	}
	// 4 ok, 2 down and 2 bad at the webhook, 1 refused: 5 dead letters.
	restarted.waitFor(30*time.Second, restarted.stderr, func([]string) bool {
		st := statusJSON(t, secretURL)
		mu.Lock()
		defer mu.Unlock()
		return st["dlq"].(map[string]any)["messages"] == 5.0 && st["groups"].([]any)[0].(map[string]any)["backlog"] == 0.0 && got["alerts.sec.ok"] >= 4
	}, "5 dead letters, the backlog empty and 4 alerts at the webhook")
	mu.Lock()
	if !sawToken || !sawBasic {
		t.Errorf("the webhook never got the token (%v) or the URL's password (%v): the secrets were not in play", sawToken, sawBasic)
	}
	mu.Unlock()

	outputs := map[string]string{}
	for i, r := range sends {
		outputs[fmt.Sprintf("send %d", i+1)] = r.stdout + r.stderr
	}
	for name, args := range map[string][]string{
		"status":              append([]string{"status"}, byFlags...),
		"status --json":       append([]string{"status", "--json"}, byFlags...),
		"status (URL)":        {"status", "--url", secretURL},
		"status --json (URL)": {"status", "--json", "--url", secretURL},
		"dlq ls":              append([]string{"dlq", "ls"}, byFlags...),
		"dlq ls --json":       {"dlq", "ls", "--json", "--url", secretURL},
	} {
		r := mustReactor(t, "", args...)
		outputs[name] = r.stdout + r.stderr
	}
	var seqs []uint64
	for _, l := range strings.Split(strings.TrimSpace(outputs["dlq ls --json"]), "\n") {
		var letter struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal([]byte(l), &letter); err != nil {
			t.Fatalf("dlq ls --json: %v:\n%s", err, outputs["dlq ls --json"])
		}
		seqs = append(seqs, letter.Seq)
	}
	if len(seqs) != 5 {
		t.Fatalf("dlq ls --json: %d dead letters, want 5:\n%s", len(seqs), outputs["dlq ls --json"])
	}
	redacted := 0
	for _, seq := range seqs {
		for _, asJSON := range []bool{false, true} {
			args := append([]string{"dlq", "show"}, byFlags...)
			if asJSON {
				args = append(args, "--json")
			}
			r := mustReactor(t, "", append(args, strconv.FormatUint(seq, 10))...)
			outputs[fmt.Sprintf("dlq show %d (json %v)", seq, asJSON)] = r.stdout + r.stderr
			redacted += strings.Count(r.stdout, "REDACTED")
		}
	}
	if redacted == 0 {
		t.Error("no REDACTED in the dead letters: the webhook's echo of the secrets did not reach them, so nothing was tested")
	}

	for name, p := range map[string]*runProc{"external run": external, "restarted server": restarted} {
		if code := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
			t.Errorf("%s exit code %d", name, code)
		}
	}
	for name, p := range map[string]*runProc{"server": server, "external run": external, "restarted server": restarted} {
		outputs[name+" stdout"] = strings.Join(p.stdout.snapshot(), "\n")
		outputs[name+" stderr"] = strings.Join(p.stderr.snapshot(), "\n")
	}
	if !strings.Contains(outputs["external run stderr"], `"level":"DEBUG"`) || !strings.Contains(outputs["restarted server stderr"], "webhook") {
		t.Errorf("the logs lack the debug records and webhook errors this test looks into:\n%s", outputs["restarted server stderr"])
	}
	for name, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s shows the secret %q:\n%s", name, s, out)
			}
		}
	}
	t.Logf("%d outputs checked, %d bytes; webhook requests: %v", len(outputs), func() (n int) {
		for _, o := range outputs {
			n += len(o)
		}
		return n
	}(), got)
}

// The data dir is created with mode 0700, and an existing one with a looser
// mode is tightened: the store holds every alert.
func TestDataDirIsPrivate(t *testing.T) {
	t.Parallel()
	fresh := filepath.Join(t.TempDir(), "fresh")
	loose := filepath.Join(t.TempDir(), "loose")
	if err := os.Mkdir(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	for _, dir := range []string{fresh, loose} {
		run := startRun(t, dir)
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("data dir %s has mode %v, want 0700", filepath.Base(dir), fi.Mode().Perm())
		}
		if code := run.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
			t.Errorf("exit code %d", code)
		}
	}
}

// freePort returns a port of 127.0.0.1 where nothing listens now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
