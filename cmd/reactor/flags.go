package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/urfave/cli/v2"

	"github.com/reactor-alerts/reactor/stream"
)

// Flag categories, for --help.
const (
	catConn    = "Connection (mirrors the nats CLI)"
	catStreams = "Streams"
	catServer  = "Embedded server"
	catProc    = "Processing"
	catOutput  = "Output"
)

// defaultURL is where send, replay, dlq and status find `reactor run`.
const defaultURL = "nats://127.0.0.1:4222"

// connFlags are the flags that say how to reach NATS, with the nats CLI's
// names and environment variables. url is the default of --url: empty for
// run (the embedded server), defaultURL for the others.
func connFlags(url string) []cli.Flag {
	urlUsage := "NATS server or cluster URL(s), comma-separated"
	userUsage, passUsage, tokenUsage := "user name", "password", "auth token"
	if url == "" {
		urlUsage = "use this external NATS server or cluster instead of the embedded one"
		userUsage = "user name (for --url; with the embedded server, clients must log in with it)"
		passUsage = "password (for --url, or required from clients of the embedded server)"
		tokenUsage = "auth token (for --url, or required from clients of the embedded server)"
	}
	return []cli.Flag{
		&cli.StringFlag{Name: "url", Value: url, Usage: urlUsage, EnvVars: []string{"NATS_URL"}, Category: catConn},
		&cli.StringFlag{Name: "user", Usage: userUsage, EnvVars: []string{"NATS_USER"}, Category: catConn},
		&cli.StringFlag{Name: "password", Usage: passUsage, EnvVars: []string{"NATS_PASSWORD"}, Category: catConn},
		&cli.StringFlag{Name: "token", Usage: tokenUsage, EnvVars: []string{"NATS_TOKEN"}, Category: catConn},
		&cli.StringFlag{Name: "creds", Usage: "user credentials (JWT) file", EnvVars: []string{"NATS_CREDS"}, Category: catConn, TakesFile: true},
		&cli.StringFlag{Name: "nkey", Usage: "nkey seed file", EnvVars: []string{"NATS_NKEY"}, Category: catConn, TakesFile: true},
		&cli.StringFlag{Name: "tlscert", Usage: "TLS client certificate file", EnvVars: []string{"NATS_CERT"}, Category: catConn, TakesFile: true},
		&cli.StringFlag{Name: "tlskey", Usage: "TLS client key file", EnvVars: []string{"NATS_KEY"}, Category: catConn, TakesFile: true},
		&cli.StringFlag{Name: "tlsca", Usage: "CA file to verify the server's certificate", EnvVars: []string{"NATS_CA"}, Category: catConn, TakesFile: true},
	}
}

// streamFlags name reactor's two streams.
func streamFlags() []cli.Flag {
	def := stream.Topology{}.WithDefaults()
	return []cli.Flag{
		&cli.StringFlag{Name: "alerts-stream", Value: def.Alerts, Usage: "stream holding every alert once (read by each group and by replay)", EnvVars: []string{"REACTOR_ALERTS_STREAM"}, Category: catStreams},
		&cli.StringFlag{Name: "dlq-stream", Value: def.DLQ, Usage: "dead-letter stream", EnvVars: []string{"REACTOR_DLQ_STREAM"}, Category: catStreams},
	}
}

// clientFlags are what every command that talks to a running server takes.
func clientFlags() []cli.Flag {
	return append(connFlags(defaultURL), streamFlags()...)
}

func jsonFlag(usage string) cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: usage, EnvVars: []string{"REACTOR_JSON"}, Category: catOutput}
}

// streamConfig is the connection part of stream.Config from the flags: the
// URL and the credentials. run adds the embedded server's settings.
func streamConfig(c *cli.Context) stream.Config {
	return stream.Config{
		URL: c.String("url"),
		Auth: stream.Auth{
			User:      c.String("user"),
			Password:  c.String("password"),
			Token:     c.String("token"),
			NKeyFile:  c.String("nkey"),
			CredsFile: c.String("creds"),
			TLSCert:   c.String("tlscert"),
			TLSKey:    c.String("tlskey"),
			TLSCA:     c.String("tlsca"),
		},
	}
}

// topology is the stream names from the flags.
func topology(c *cli.Context) stream.Topology {
	return stream.Topology{
		Alerts: c.String("alerts-stream"),
		DLQ:    c.String("dlq-stream"),
	}.WithDefaults()
}

// connect reaches the running server at --url. It never starts one.
func connect(c *cli.Context) (*stream.Conn, error) {
	cfg := streamConfig(c)
	if cfg.URL == "" {
		return nil, usageErrorf("--url is empty: give the URL of a NATS server, e.g. %s", defaultURL)
	}
	cfg.Name = "reactor " + c.Command.Name
	ctx, cancel := context.WithTimeout(c.Context, stream.RequestTimeoutDefault)
	defer cancel()
	conn, err := stream.Open(ctx, cfg)
	if errors.Is(err, stream.ErrNoServer) {
		return nil, withHint(fmt.Errorf("no NATS server at %s", cfg.String()),
			"start one with `reactor run` or set --url/NATS_URL")
	}
	if errors.Is(err, nats.ErrAuthorization) {
		return nil, authError(cfg)
	}
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// authError explains why the server at cfg.URL refused the connection: no
// credentials, or wrong ones. Like every error, it never shows them.
func authError(cfg stream.Config) error {
	where := cfg.String()
	if cfg.Auth == (stream.Auth{}) && !strings.Contains(cfg.URL, "@") {
		return withHint(fmt.Errorf("the NATS server at %s requires credentials", where),
			"give --user and --password, --token, --creds or --nkey (or NATS_USER and NATS_PASSWORD, NATS_TOKEN, NATS_CREDS, NATS_NKEY)")
	}
	return withHint(fmt.Errorf("the NATS server at %s refused the credentials (authorization violation)", where),
		"check --user and --password, --token, --creds or --nkey, and the user in the URL")
}
