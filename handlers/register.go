package handlers

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream"
)

// Deps are what the handlers built by NewRules use from the outside world.
// The zero value is valid.
type Deps struct {
	// Out receives the print actions' lines, one Write per line, serialised
	// across all of them. Defaults to os.Stdout.
	Out io.Writer
	// Logger receives debug records from exec and webhook actions; outcomes
	// are logged by the processor, which decides them. Defaults to
	// discarding.
	Logger *slog.Logger
	// HTTPClient sends webhook requests. Defaults to a client of its own,
	// with connect, TLS and idle timeouts (each request is bounded by its
	// webhook's timeout as well).
	HTTPClient *http.Client
	// OnRun, if set, is called with the record of every run of an action
	// (see Run), stored or not, from the worker that ran it: for metrics.
	// It must be fast and safe for concurrent use.
	OnRun func(Run)
	// ConsoleURL is the web console's URL as people reach it, e.g.
	// https://reactor.example.com: Slack and PagerDuty messages link to the
	// alert's page there, and templates see it as .ConsoleURL. Defaults to
	// none: no link.
	ConsoleURL string
}

func (d Deps) withDefaults() Deps {
	if d.Out == nil {
		d.Out = os.Stdout
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.HTTPClient == nil {
		d.HTTPClient = newHTTPClient()
	}
	return d
}

// newHTTPClient returns a client for webhooks: a transport of its own, so
// that reactor's connections are not shared with other users of
// http.DefaultTransport.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
	}}
}

// action is one step of an entry, given the alert decoded once.
type action interface {
	// kind names the action in run records, logs and metrics: print,
	// exec, webhook, slack, pagerduty.
	kind() string
	// run acts on the alert a of m and notes in r what it ran and what came
	// back (the command line or URL, the exit code or HTTP status, the end
	// of the output); its error is the entry's result.
	run(ctx context.Context, m *processor.Message, a stream.Alert, r *Run) error
}

// runAlone runs act on m outside a rule entry, as a processor.Handler:
// it decodes the alert (a permanent error if it is invalid) and leaves no
// run record.
func runAlone(ctx context.Context, act action, m *processor.Message) error {
	a, err := Decode(m)
	if err != nil {
		return err
	}
	return act.run(ctx, m, a, &Run{})
}

// newActions builds the actions of e, the entry called name, in the order
// they run: print, exec, webhook, slack, pagerduty.
func newActions(name string, e Entry, pc PrintConfig, deps Deps, out io.Writer) []action {
	var c []action
	if e.Print {
		c = append(c, &Print{Out: out, Format: pc.Format})
	}
	if x := e.Exec; x != nil {
		c = append(c, &Exec{
			Command: x.Command, Env: x.Env, Dir: x.Dir, Timeout: x.Timeout,
			PermanentExitCodes: x.PermanentExitCodes, ConsoleURL: deps.ConsoleURL, Logger: deps.Logger,
		})
	}
	if x := e.Webhook; x != nil {
		c = append(c, &Webhook{
			URL: x.URL, Headers: x.Headers, Body: x.Body, Timeout: x.Timeout,
			ConsoleURL: deps.ConsoleURL, Client: deps.HTTPClient, Logger: deps.Logger,
			secrets: x.urlSecrets,
		})
	}
	if x := e.Slack; x != nil {
		s := x.action()
		s.ConsoleURL, s.Client, s.Logger = deps.ConsoleURL, deps.HTTPClient, deps.Logger
		c = append(c, s)
	}
	if x := e.PagerDuty; x != nil {
		p := x.action()
		p.ConsoleURL, p.Client, p.Logger, p.entry = deps.ConsoleURL, deps.HTTPClient, deps.Logger, name
		c = append(c, p)
	}
	return c
}

// bindGroup tells the actions that need it which group runs them.
func bindGroup(actions []action, name string) {
	for _, act := range actions {
		if b, ok := act.(interface{ bindGroup(string) }); ok {
			b.bindGroup(name)
		}
	}
}
