package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/cmd/reactor/internal/console"

	"github.com/chromedp/chromedp"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

func (b *bundle) status() *stream.Status {
	b.t.Helper()
	st, err := stream.ReadStatus(context.Background(), b.conn.JS, b.topo)
	if err != nil {
		b.t.Fatal(err)
	}
	return st
}

func (b *bundle) group(name string) stream.GroupStatus {
	b.t.Helper()
	for _, g := range b.status().Groups {
		if g.Name == name {
			return g
		}
	}
	b.t.Fatalf("no group %s", name)
	return stream.GroupStatus{}
}

// held reports that the group's consumer has n alerts pending and a pull
// waiting: the server holds them back (a paused group).
func (b *bundle) held(n uint64) bool {
	g := b.group("ops")
	return g.NumPending == n && g.Waiting > 0
}

func TestOverviewReadsTheNumbers(t *testing.T) {
	b := setup(t)
	b.startProcessor()
	for i := range 5 {
		b.send("cpu", "warning", fmt.Sprint("hot ", i), nil)
	}
	b.send("fail.disk", "critical", "disk full", nil)
	b.send("fail.net", "error", "link down", nil)
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.handled.Load() == 5 && b.status().DLQ.Messages == 2 }, "5 handled, 2 dead letters")

	ctx := browser(t)
	do(t, ctx, chromedp.Navigate(b.srv.URL+"/"))
	for sel, want := range map[string]string{
		"#alerts-total":       "7",
		"#alerts-last-minute": "7",
		"#dlq-total":          "2",
		"#backlog-total":      "0",
		"#chart-published":    "7",
		`#groups tr[data-group="ops"] td:nth-child(2)`: "active",
	} {
		if got := text(t, ctx, sel); got != want {
			t.Errorf("overview %s = %q, want %q", sel, got, want)
		}
	}
	screenshot(t, ctx, "overview")

	// Paused, the group's backlog grows, and the page shows it by itself.
	if _, err := stream.PauseGroup(context.Background(), b.conn.JS, b.topo, "ops", time.Time{}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		b.send("cpu", "info", fmt.Sprint("later ", i), nil)
	}
	waitText(t, ctx, "#alerts-total", "10")
	waitText(t, ctx, "#backlog-total", "3")
	waitText(t, ctx, `#groups tr[data-group="ops"] td:nth-child(2)`, "paused")
	screenshot(t, ctx, "overview-paused")
	if got := text(t, ctx, "#chart-handled"); got != "0" {
		t.Errorf("handled while paused, in the chart: %s", got)
	}
	// Resumed, the 3 are handled, and the chart counts them (it sampled
	// the group since the first view).
	if err := stream.ResumeGroup(context.Background(), b.conn.JS, b.topo, "ops"); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#backlog-total", "0")
	waitText(t, ctx, "#chart-handled", "3")
	waitText(t, ctx, `#groups tr[data-group="ops"] td:nth-child(2)`, "active")
}

func TestFilterAlerts(t *testing.T) {
	b := setup(t)
	b.send("db.primary", "critical", "replication broken", map[string]string{"host": "db-1"})
	b.send("db.replica", "warning", "lag 30s", map[string]string{"host": "db-2"})
	b.send("db.replica", "critical", "replica down", map[string]string{"host": "db-3"})
	b.send("web", "critical", "5xx burst", map[string]string{"host": "web-1"})
	b.send("web", "info", "deploy done", map[string]string{"host": "web-1"})

	ctx := browser(t)
	rows := func() []string { return texts(t, ctx, "#alerts tbody tr td.summary") }
	do(t, ctx, chromedp.Navigate(b.srv.URL+"/alerts"))
	if got := strings.Join(rows(), "|"); got != "deploy done|5xx burst|replica down|lag 30s|replication broken" {
		t.Errorf("alerts, newest first: %s", got)
	}
	do(t, ctx,
		chromedp.SetValue(chromedp.CSS(`input[name="subject"]`), "alerts.db.>"),
		chromedp.SetValue(chromedp.CSS(`select[name="severity"]`), "critical"),
	)
	click(t, ctx, `.filters button[type="submit"]`, `a.button-link`)
	screenshot(t, ctx, "alerts-filtered")
	if got := strings.Join(rows(), "|"); got != "replica down|replication broken" {
		t.Errorf("critical alerts on alerts.db.>: %s", got)
	}
	for query, want := range map[string]string{
		"label=host%3Dweb-1":          "deploy done|5xx burst",
		"label=host&q=REPLICA":        "replica down|lag 30s|replication broken",
		"q=burst":                     "5xx burst",
		"since=1h&subject=alerts.web": "deploy done|5xx burst",
		"until=2000-01-01":            "",
	} {
		do(t, ctx, chromedp.Navigate(b.srv.URL+"/alerts?"+query))
		if got := strings.Join(rows(), "|"); got != want {
			t.Errorf("alerts?%s: %q, want %q", query, got, want)
		}
	}
	// An alert's page: payload, headers, and each group's fate.
	do(t, ctx, chromedp.Navigate(b.srv.URL+"/alerts/3"))
	if got := text(t, ctx, "h1"); got != "replica down" {
		t.Errorf("alert 3's title = %q", got)
	}
	if got := text(t, ctx, "pre.payload"); !strings.Contains(got, `"host": "db-3"`) {
		t.Errorf("alert 3's payload: %s", got)
	}
	screenshot(t, ctx, "alert")
}

func TestAlertsArePagedAndScansBounded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 45 {
		sev := "info"
		if i == 3 {
			sev = "critical"
		}
		b.send("load", sev, fmt.Sprintf("alert number %d", i), nil)
	}
	// 45 alerts, 20 a page: 20, 20, 5, each page linking to the next.
	path := "/alerts"
	var pages []int
	for path != "" {
		code, body := b.get(path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", path, code, body)
		}
		pages = append(pages, strings.Count(body, `<td class="summary">`))
		path = ""
		if _, after, ok := strings.Cut(body, `id="older" href="`); ok {
			u, _, _ := strings.Cut(after, `"`)
			path = strings.ReplaceAll(u, "&amp;", "&")
		}
	}
	if fmt.Sprint(pages) != "[20 20 5]" {
		t.Errorf("pages of 45 alerts: %v, want [20 20 5]", pages)
	}
	// Each list says how many alerts its filter matches, or, when the
	// console filters and stopped reading, how many of those it read.
	for query, want := range map[string]string{
		"":                              "45 alerts",
		"?before=10":                    "45 alerts",
		"?subject=alerts.load":          "45 alerts match",
		"?subject=alerts.none":          "0 alerts match",
		"?severity=critical":            "1 alert matches",
		"?q=number+4":                   "6 alerts match",
		"?since=1h&subject=alerts.load": "45 alerts match",
		"?severity=info&q=alert+number": "44 alerts match",
	} {
		_, body := b.get("/alerts" + query)
		if !strings.Contains(body, `<p class="total" id="total">`+want+`</p>`) {
			_, got, _ := strings.Cut(body, `id="total">`)
			got, _, _ = strings.Cut(got, "<")
			t.Errorf("alerts%s: total %q, want %q", query, got, want)
		}
	}
	// A filter the server cannot apply reads at most ScanLimit sequences a
	// page and offers the older ones.
	c := b.limitedConsole(t, 20)
	code, body := c.get("/alerts?severity=critical")
	if code != http.StatusOK || strings.Contains(body, "alert number 3") || !strings.Contains(body, "Read sequences 26–45") || !strings.Contains(body, `id="older"`) ||
		!strings.Contains(body, `<p class="total" id="total">0 of the last 20 read match</p>`) {
		t.Errorf("bounded scan, first page: %d\n%s", code, body)
	}
	if _, body := c.get("/alerts?severity=info"); !strings.Contains(body, `<p class="total" id="total">20 of the last 20 read match</p>`) {
		t.Errorf("bounded scan of a common severity: no partial total\n%s", body)
	}
	code, body = c.get("/alerts?severity=critical&before=6")
	if code != http.StatusOK || !strings.Contains(body, "alert number 3") {
		t.Errorf("bounded scan, an older page: %d\n%s", code, body)
	}
	if code, _ := b.get("/alerts?since=yesterday"); code != http.StatusBadRequest {
		t.Errorf("bad since: %d, want 400", code)
	}
	if code, _ := b.get("/alerts/999"); code != http.StatusNotFound {
		t.Errorf("unknown alert: %d, want 404", code)
	}
}

func TestRedriveDeadLetterByClicking(t *testing.T) {
	b := setup(t)
	b.startProcessor()
	b.send("fail.disk", "critical", "disk full", map[string]string{"host": "db-1"})
	for i := range 3 {
		b.send("fail.other", "error", fmt.Sprint("other ", i), nil)
	}
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.status().DLQ.Messages == 4 }, "4 dead letters")
	b.failing.Store(false)

	ctx := browser(t)
	// The alert's page says what became of it.
	do(t, ctx, chromedp.Navigate(b.srv.URL+"/alerts/1"))
	if got := text(t, ctx, "#fates"); !strings.Contains(got, "ops") || !strings.Contains(got, "dead-lettered (permanent) after 1 delivery") {
		t.Errorf("alert 1's fate in each group: %q", got)
	}
	// Its one dead letter; which DLQ sequence it got depends on which of
	// the two workers dead-lettered first.
	if got := text(t, ctx, "#dead-letters"); strings.Count(got, "dead letter ") != 1 || !strings.Contains(got, "permanent in group ops") {
		t.Errorf("alert 1's dead letters: %q, want its one permanent dead letter of group ops", got)
	}
	do(t, ctx, chromedp.Navigate(b.srv.URL+"/dlq?subject=alerts.fail.disk"))
	click(t, ctx, `#deadletters td.summary a`, `#redrive`)
	if got := text(t, ctx, "pre.error-text"); got != "permanent: disk on fire\nsecond line of the error" {
		t.Errorf("dead letter's error: %q", got)
	}
	screenshot(t, ctx, "deadletter")
	click(t, ctx, `#redrive`, `#confirm`)
	if got := text(t, ctx, "h1"); got != "Redrive 1 dead letter?" {
		t.Errorf("confirmation: %q", got)
	}
	click(t, ctx, `#confirm`, `.notice`)
	if got := text(t, ctx, ".notice"); !strings.HasPrefix(got, "Redrove 1 dead letter") {
		t.Errorf("notice after redrive: %q", got)
	}
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.seenCount("alerts.fail.disk") == 1 }, "redriven alert handled")
	if !strings.Contains(b.logs.String(), "dead letter redriven") {
		t.Errorf("no log of the redrive:\n%s", b.logs)
	}

	// Select two of the three others, purge them: the confirmation counts 2.
	do(t, ctx,
		chromedp.Navigate(b.srv.URL+"/dlq"),
		chromedp.Click(chromedp.CSS(`#deadletters tbody tr:nth-child(1) input[name="seq"]`)),
		chromedp.Click(chromedp.CSS(`#deadletters tbody tr:nth-child(2) input[name="seq"]`)),
	)
	screenshot(t, ctx, "deadletters")
	if got := text(t, ctx, `button[formaction="/dlq/purge"] .count`); got != "(2)" {
		t.Errorf("purge button's count: %q", got)
	}
	click(t, ctx, `button[formaction="/dlq/purge"][data-needs-selection]`, `#confirm`)
	screenshot(t, ctx, "confirm")
	if got := text(t, ctx, "#confirm"); got != "Yes, purge 2" {
		t.Errorf("purge confirmation: %q", got)
	}
	click(t, ctx, `#confirm`, `.notice`)
	if n := b.status().DLQ.Messages; n != 1 {
		t.Errorf("%d dead letters after purging 2 of 3", n)
	}
	// All matching a filter: the last one, redriven.
	do(t, ctx, chromedp.Navigate(b.srv.URL+"/dlq?reason=permanent"))
	click(t, ctx, `.bulk button[formaction="/dlq/redrive"]`, `#confirm`)
	if got := text(t, ctx, "#confirm-count"); got != "1" {
		t.Errorf("redrive all matching: confirmation counts %q", got)
	}
	click(t, ctx, `#confirm`, `.notice`)
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.seenCount("alerts.fail.other") == 1 && b.status().DLQ.Messages == 0 }, "last dead letter redriven and handled")
}

func TestPauseAndResumeGroupByClicking(t *testing.T) {
	b := setup(t)
	b.startProcessor()
	ctx := browser(t)
	do(t, ctx, chromedp.Navigate(b.srv.URL+"/groups"))
	click(t, ctx, `tr[data-group="ops"] button[data-action="pause"]`, `.notice`)
	if got := text(t, ctx, ".notice"); !strings.HasPrefix(got, "Paused group ops until resumed") {
		t.Errorf("notice after pause: %q", got)
	}
	for i := range 3 {
		b.send("cpu", "warning", fmt.Sprint("while paused ", i), nil)
	}
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.held(3) }, "3 alerts held for the paused group")
	if n := b.handled.Load(); n != 0 {
		t.Fatalf("%d alerts handled by a paused group", n)
	}
	do(t, ctx, chromedp.Navigate(b.srv.URL+"/groups"))
	screenshot(t, ctx, "groups-paused")
	if got := text(t, ctx, `tr[data-group="ops"] td[data-k="pending"]`); got != "3" {
		t.Errorf("groups page: pending %q, want 3", got)
	}
	click(t, ctx, `tr[data-group="ops"] button[data-action="resume"]`, `.notice`)
	streamtest.Eventually(t, 10*time.Second, func() bool { return b.handled.Load() == 3 }, "3 alerts handled after resume")
	logs := b.logs.String()
	for _, want := range []string{`msg="group paused" consumer=ops`, `msg="group resumed" consumer=ops`} {
		if !strings.Contains(logs, want) {
			t.Errorf("console log lacks %s:\n%s", want, logs)
		}
	}
}

func TestActionFromAnotherOriginIsRefused(t *testing.T) {
	b := setup(t)
	b.startProcessor()
	// Another site's page that posts to the console as soon as it loads.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s/groups/ops/pause"></form><script>document.getElementById("f").submit()</script>`, b.srv.URL)
		}
	}))
	defer evil.Close()
	ctx := browser(t)
	var body string
	do(t, ctx, chromedp.Navigate(evil.URL+"/"))
	streamtest.Eventually(t, 10*time.Second, func() bool {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ = textOf(ctx, "body")
		return strings.HasPrefix(loc, b.srv.URL) && body != ""
	}, "the other site's form was not submitted")
	if !strings.Contains(body, "cross-origin") {
		t.Errorf("cross-origin POST answered %q", body)
	}
	if b.group("ops").Paused {
		t.Fatal("a cross-origin POST paused the group")
	}
	// The same without a browser's help: an Origin header or Sec-Fetch-Site.
	for _, h := range []http.Header{{"Origin": {evil.URL}}, {"Sec-Fetch-Site": {"cross-site"}}} {
		req, _ := http.NewRequest(http.MethodPost, b.srv.URL+"/groups/ops/pause", strings.NewReader(url.Values{}.Encode()))
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST with %v: %d, want 403", h, resp.StatusCode)
		}
	}
	if b.group("ops").Paused {
		t.Fatal("a cross-origin POST paused the group")
	}
	// Each refusal is logged, as the listener logs a refused token.
	if n := strings.Count(b.logs.String(), `msg="http request rejected" path=/groups/ops/pause code=403`); n != 3 {
		t.Errorf("%d refusals logged, want 3:\n%s", n, b.logs)
	}
	if !strings.Contains(b.logs.String(), `reason="cross-origin request detected from Sec-Fetch-Site header"`) {
		t.Errorf("the refusal's reason is not logged:\n%s", b.logs)
	}
	if code, _ := b.get("/groups/ops/pause"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET of an action: %d, want 405", code)
	}
}

// The chart's handled series counts every alert settled while the console
// samples, dead-lettered ones included, once.
func TestChartCountsHandledOnce(t *testing.T) {
	t.Parallel()
	b := setupWith(t, console.Config{SampleInterval: 20 * time.Millisecond})
	b.startProcessor()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.console.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	streamtest.Eventually(t, 5*time.Second, func() bool {
		_, body := b.get("/")
		return strings.Contains(body, "sampled by this process, since")
	}, "a first sample")
	const n = 300
	for i := range n {
		name := "cpu"
		if i%10 == 0 {
			name = "fail.disk"
		}
		b.send(name, "warning", fmt.Sprint("load ", i), nil)
	}
	streamtest.Eventually(t, 20*time.Second, func() bool { return b.group("ops").Backlog == 0 && b.group("ops").Delivered >= n }, "all settled")
	want := fmt.Sprintf(`id="chart-handled">%d<`, n)
	streamtest.Eventually(t, 10*time.Second, func() error {
		_, body := b.get("/")
		if strings.Contains(body, want) {
			return nil
		}
		_, got, _ := strings.Cut(body, `id="chart-handled">`)
		got, _, _ = strings.Cut(got, "<")
		return fmt.Errorf("chart shows %s handled, want %d", got, n)
	})
}

// An action's notice reaches the next page through a cookie, once; a link
// with a notice in its query shows nothing.
func TestNoticeComesFromTheActionOnly(t *testing.T) {
	b := setup(t)
	b.startProcessor()
	if _, body := b.get("/groups?notice=" + url.QueryEscape("Call 555-0100 now")); strings.Contains(body, "555-0100") {
		t.Error("a notice in the query was shown")
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar}
	resp, err := client.PostForm(b.srv.URL+"/groups/ops/pause", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "Paused group ops") {
		t.Errorf("page after the pause has no notice:\n%s", body)
	}
	resp, err = client.Get(b.srv.URL + "/groups")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "Paused group ops") {
		t.Error("the notice was shown again on the next page")
	}
}

// The overview's chart offers 15m, 1h, 6h, 24h and 7d, and picks the
// smallest that covers the alert stream's age by itself: a fresh install's
// alerts are not a spike in the chart's last pixels.
func TestChartRanges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 4 {
		b.send("cpu", "warning", fmt.Sprint("hot ", i), nil)
	}
	for query, want := range map[string]string{
		"":           "Per minute, last 15 minutes",
		"?range=15m": "Per minute, last 15 minutes",
		"?range=1h":  "Per minute, last hour",
		"?range=6h":  "Per 5 minutes, last 6 hours",
		"?range=24h": "Per 15 minutes, last 24 hours",
		"?range=7d":  "Per hour, last 7 days",
	} {
		code, body := b.get("/" + query)
		if code != http.StatusOK || !strings.Contains(body, want) || !strings.Contains(body, `id="chart-published">4<`) {
			t.Errorf("overview%s: %d, want %q and 4 published", query, code, want)
		}
		for _, r := range []string{"15m", "1h", "6h", "24h", "7d"} {
			if !strings.Contains(body, `href="/?range=`+r+`"`) {
				t.Errorf("overview%s offers no %s range", query, r)
			}
		}
	}
	if _, body := b.get("/?range=6h"); !strings.Contains(body, `href="/?range=6h" aria-current="true"`) {
		t.Error("the chosen range is not marked")
	}
	if code, _ := b.get("/?range=2d"); code != http.StatusBadRequest {
		t.Errorf("range=2d: %d, want 400", code)
	}
}
