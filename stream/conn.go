// Package stream is reactor's JetStream side: the embedded server or a
// connection to an external one, the stream and consumer topology, and
// publishing with message ids.
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

// Config says where JetStream lives: an external server or cluster when URL
// is set, else an embedded server started with Embedded.
type Config struct {
	// URL of an external NATS server or cluster (comma-separated URLs).
	// Empty starts the embedded server.
	URL string
	// Auth for the external server.
	Auth Auth
	// Embedded configures the embedded server when URL is empty.
	Embedded ServerConfig
	// Name is the client connection name. Defaults to "reactor".
	Name string
	// Logger receives connection events. Defaults to discarding them.
	Logger *slog.Logger
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

// Conn is a client connection with its JetStream context, and the embedded
// server behind it if there is one.
type Conn struct {
	NC     *nats.Conn
	JS     jetstream.JetStream
	Server *Server // nil for an external server
}

// RequestTimeoutDefault bounds one request to the NATS server whose caller
// gives no deadline of its own: a connect, a management call (stream or
// consumer info, create, delete) or the wait for one publish's ack.
const RequestTimeoutDefault = 5 * time.Second

// ErrNoServer means no NATS server answered at the URL.
var ErrNoServer = errors.New("stream: no NATS server reachable")

// Open starts the embedded server or connects to the external one.
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
	if cfg.URL == "" {
		if cfg.Embedded.Logger == nil {
			cfg.Embedded.Logger = cfg.Logger
		}
		srv, err := StartServer(cfg.Embedded)
		if err != nil {
			return nil, err
		}
		nc, err := srv.Connect(opts...)
		if err != nil {
			srv.Shutdown()
			return nil, err
		}
		return newConn(nc, srv)
	}
	authOpts, err := cfg.Auth.options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, authOpts...)
	timeout := RequestTimeoutDefault
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
	}
	opts = append(opts, nats.Timeout(timeout))
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		if errors.Is(err, nats.ErrNoServers) {
			return nil, fmt.Errorf("%w at %s", ErrNoServer, redactURL(cfg.URL))
		}
		return nil, fmt.Errorf("stream: connect to %s: %w", redactURL(cfg.URL), err)
	}
	return newConn(nc, nil)
}

func newConn(nc *nats.Conn, srv *Server) (*Conn, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		if srv != nil {
			srv.Shutdown()
		}
		return nil, fmt.Errorf("stream: jetstream: %w", err)
	}
	return &Conn{NC: nc, JS: js, Server: srv}, nil
}

// Close drains the connection (pending publishes and acks are flushed), then
// stops the embedded server, if any.
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
	if c.Server != nil {
		c.Server.Shutdown()
	}
	return err
}

func (a Auth) options() ([]nats.Option, error) {
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
