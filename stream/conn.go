// Package stream is reactor's JetStream side: the alert and its wire form
// (Alert, DecodeAlert, Alert.Msg), the connection to a server (by URL, or in
// process to the one package stream/embedded runs), the stream and
// consumer-group topology, publishing with message ids, dead letters, and
// status. Every producer of alerts (reactor send, stream/ingest, Go
// programs) and every consumer goes through it. It links nats.go only, never
// the server.
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config says where JetStream lives: a server or cluster at URL, or a server
// in this process (InProcess). One of the two is required.
type Config struct {
	// URL of a NATS server or cluster (comma-separated URLs).
	URL string
	// InProcess connects to a server running in this process, without the
	// network: an *embedded.Server. URL must be empty then.
	InProcess nats.InProcessConnProvider
	// OwnInProcess makes the Conn own the InProcess server: Close shuts it
	// down after draining, and it must have a Shutdown method.
	// embedded.Open sets it. Defaults to false: Close leaves it running.
	OwnInProcess bool
	// Auth is the credentials the server requires.
	Auth Auth
	// Name is the client connection name. Defaults to "reactor".
	Name string
	// Logger receives connection events. Defaults to discarding them.
	Logger *slog.Logger
	// Dialer, if set, opens the network connections to URL's servers (a
	// proxy's, or the network namespace of a test's). Defaults to
	// nats.go's.
	Dialer nats.CustomDialer
}

// String says where cfg connects, for messages and logs: its URLs without
// user information, or "in process". It never holds a credential.
func (cfg Config) String() string {
	if cfg.URL == "" && cfg.InProcess != nil {
		return "in process"
	}
	return redactURL(cfg.URL)
}

// Auth holds the credentials for an external server, mirroring the nats CLI.
// None of these values are ever logged.
type Auth struct {
	User     string
	Password string
	Token    string
	// NKeyFile is a file holding an nkey seed.
	NKeyFile string
	// CredsFile is a JWT user credentials file.
	CredsFile string
	// TLSCert and TLSKey are a client certificate and its key; TLSCA is the
	// CA that signed the server's certificate.
	TLSCert string
	TLSKey  string
	TLSCA   string
}

// Conn is a client connection with its JetStream context.
type Conn struct {
	NC *nats.Conn
	JS jetstream.JetStream
	// InProcess is Config.InProcess: the server in this process, or nil.
	InProcess nats.InProcessConnProvider

	shutdown func() // the owned in-process server's, or nil
}

// A server cut off by the network (a partition, a host that lost its power)
// sends no reset: a client learns it only when its pings go unanswered.
// With nats.go's defaults (a ping every 2 minutes, 2 unanswered allowed) a
// process connected to such a server is stuck for 4 to 6 minutes; with a
// ping every pingInterval it reconnects to another server of the cluster
// within (maxPingsOut+1)*pingInterval. A ping costs a few bytes each way.
const (
	pingInterval = 2 * time.Second
	maxPingsOut  = 2
)

// RequestTimeoutDefault bounds one request to the NATS server whose caller
// gives no deadline of its own: a connect, a management call (stream or
// consumer info, create, delete) or the wait for one publish's ack.
const RequestTimeoutDefault = 5 * time.Second

// ErrNoServer means no NATS server answered at the URL.
var ErrNoServer = errors.New("stream: no NATS server reachable")

// Open connects to the server at cfg.URL or in process to cfg.InProcess.
func Open(ctx context.Context, cfg Config) (*Conn, error) {
	if cfg.Name == "" {
		cfg.Name = "reactor"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				cfg.Logger.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			cfg.Logger.Info("nats reconnected", "server", redactURL(nc.ConnectedUrl()))
		}),
	}
	switch {
	case cfg.URL == "" && cfg.InProcess == nil:
		return nil, errors.New("stream: no server: set a URL or an in-process server")
	case cfg.URL != "" && cfg.InProcess != nil:
		return nil, errors.New("stream: both a URL and an in-process server")
	}
	var shutdown func()
	if cfg.OwnInProcess {
		s, ok := cfg.InProcess.(interface{ Shutdown() })
		if !ok {
			return nil, fmt.Errorf("stream: cannot own in-process server %T: it has no Shutdown method", cfg.InProcess)
		}
		shutdown = s.Shutdown
	}
	authOpts, err := cfg.Auth.Options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, authOpts...)
	timeout := RequestTimeoutDefault
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
	}
	opts = append(opts, nats.Timeout(timeout))
	if cfg.InProcess != nil {
		nc, err := nats.Connect("", append(opts, nats.InProcessServer(cfg.InProcess))...)
		if err != nil {
			return nil, fmt.Errorf("stream: connect in process: %w", err)
		}
		conn, err := newConn(nc, cfg.InProcess)
		if err != nil {
			return nil, err
		}
		conn.shutdown = shutdown
		return conn, nil
	}
	opts = append(opts, nats.PingInterval(pingInterval), nats.MaxPingsOutstanding(maxPingsOut))
	if cfg.Dialer != nil {
		opts = append(opts, nats.SetCustomDialer(cfg.Dialer))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		if errors.Is(err, nats.ErrNoServers) {
			return nil, fmt.Errorf("%w at %s", ErrNoServer, redactURL(cfg.URL))
		}
		return nil, fmt.Errorf("stream: connect to %s: %w", redactURL(cfg.URL), err)
	}
	return newConn(nc, nil)
}

func newConn(nc *nats.Conn, inProcess nats.InProcessConnProvider) (*Conn, error) {
	// An async PubAck that never comes (the stream leader that took the
	// publish stepped down or died) fails its future after the timeout;
	// without one the future would wait for ever. (Publisher waits for
	// its PubAcks on a subscription of its own, with deadlines of its
	// own.)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(RequestTimeoutDefault))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("stream: jetstream: %w", err)
	}
	return &Conn{NC: nc, JS: js, InProcess: inProcess}, nil
}

// Close drains the connection (pending publishes and acks are flushed), then
// shuts down the in-process server if the Conn owns it.
func (c *Conn) Close() error {
	var err error
	if !c.NC.IsClosed() {
		closed := make(chan struct{})
		c.NC.SetClosedHandler(func(*nats.Conn) { close(closed) })
		if err = c.NC.Drain(); err == nil {
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				c.NC.Close()
			}
		} else {
			c.NC.Close()
		}
	}
	if c.shutdown != nil {
		c.shutdown()
	}
	return err
}

// Options are the nats.go connection options that present a's credentials.
func (a Auth) Options() ([]nats.Option, error) {
	var opts []nats.Option
	if a.User != "" {
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	}
	if a.Token != "" {
		opts = append(opts, nats.Token(a.Token))
	}
	if a.NKeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(a.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("stream: nkey file %s: %w", a.NKeyFile, err)
		}
		opts = append(opts, o)
	}
	if a.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		return nil, errors.New("stream: a TLS client certificate needs both cert and key")
	}
	if a.TLSCert != "" {
		opts = append(opts, nats.ClientCert(a.TLSCert, a.TLSKey))
	}
	if a.TLSCA != "" {
		opts = append(opts, nats.RootCAs(a.TLSCA))
	}
	return opts, nil
}

// redactURL removes user info from a comma-separated list of NATS URLs, so
// they can be logged.
func redactURL(raw string) string {
	urls := strings.Split(raw, ",")
	for i, one := range urls {
		u, err := url.Parse(strings.TrimSpace(one))
		switch {
		case err != nil:
			urls[i] = "<invalid url>"
		case u.User != nil:
			u.User = url.User("redacted")
			urls[i] = u.String()
		}
	}
	return strings.Join(urls, ",")
}
