package main

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/reactor-alerts/reactor/stream/ingest"
)

// The one HTTP listener of reactor, shared by `run --http` and `reactor
// ingest`: a ServeMux with ingest under /v1/, behind the token check.

const catHTTP = "HTTP ingest"

// httpAddrDefault is where `reactor ingest` listens unless told otherwise.
const httpAddrDefault = "127.0.0.1:8080"

// Server timeouts of the HTTP listener. The write timeout leaves a request
// its whole store timeout after a slow body.
const (
	httpReadHeaderTimeout = 5 * time.Second
	httpReadTimeout       = 30 * time.Second
	httpWriteTimeout      = httpReadTimeout + ingest.StoreTimeoutDefault
	httpIdleTimeout       = 2 * time.Minute
)

// httpFlags are the HTTP listener's flags; addr is --http's default (empty:
// off, as in run).
func httpFlags(addr string) []cli.Flag {
	env := func(name string) []string { return []string{"REACTOR_HTTP" + name} }
	usage := "serve HTTP ingest (Alertmanager, Grafana and JSON alerts under /v1/) and the web console (/) on host:port"
	if addr == "" {
		usage += ", e.g. 127.0.0.1:8080; default: off"
	}
	return []cli.Flag{
		&cli.StringFlag{Name: "http", Value: addr, Usage: usage + "; a non-loopback host needs --http-token", EnvVars: env(""), Category: catHTTP},
		&cli.StringFlag{Name: "http-token", Usage: "token every request must carry: 'Authorization: Bearer TOKEN', or basic auth with TOKEN as the password", EnvVars: env("_TOKEN"), Category: catHTTP},
		&cli.StringFlag{Name: "http-tls-cert", Usage: "serve HTTPS with this certificate file (PEM; with --http-tls-key)", EnvVars: env("_TLS_CERT"), Category: catHTTP, TakesFile: true},
		&cli.StringFlag{Name: "http-tls-key", Usage: "the certificate's private key file (PEM)", EnvVars: env("_TLS_KEY"), Category: catHTTP, TakesFile: true},
		&cli.Int64Flag{Name: "http-max-body", Value: ingest.MaxBodyBytesDefault, Usage: "largest request body in bytes; larger ones are answered 413", EnvVars: env("_MAX_BODY"), Category: catHTTP},
		&cli.StringFlag{Name: "http-subject-label", Value: ingest.SubjectLabelDefault, Usage: "label of Alertmanager and Grafana alerts whose value names the subject, alerts.VALUE", EnvVars: env("_SUBJECT_LABEL"), Category: catHTTP},
	}
}

// httpConfig is the HTTP listener from the flags.
type httpConfig struct {
	addr, token     string
	tlsCert, tlsKey string
	ingest          ingest.Config
}

// httpConfigFrom reads and checks the HTTP flags. Like --listen for NATS, a
// non-loopback address without a token is refused.
func httpConfigFrom(c *cli.Context, logger *slog.Logger) (httpConfig, error) {
	cfg := httpConfig{
		addr:    c.String("http"),
		token:   c.String("http-token"),
		tlsCert: c.String("http-tls-cert"),
		tlsKey:  c.String("http-tls-key"),
		ingest: ingest.Config{
			MaxBodyBytes: c.Int64("http-max-body"),
			SubjectLabel: c.String("http-subject-label"),
			Logger:       logger,
		},
	}
	host, _, err := net.SplitHostPort(cfg.addr)
	if err != nil {
		return cfg, usageErrorf("bad --http %q: want host:port, e.g. %s", cfg.addr, httpAddrDefault)
	}
	switch {
	case (cfg.tlsCert == "") != (cfg.tlsKey == ""):
		return cfg, usageErrorf("--http-tls-cert and --http-tls-key go together")
	case cfg.ingest.MaxBodyBytes < 1:
		return cfg, usageErrorf("--http-max-body must be at least 1 byte")
	case cfg.ingest.SubjectLabel == "":
		return cfg, usageErrorf("--http-subject-label is empty: give a label name, e.g. %s", ingest.SubjectLabelDefault)
	case cfg.token == "" && !loopbackHost(host):
		return cfg, &exitError{code: exitUsage, err: fmt.Errorf("refusing to serve HTTP on %s without a token", cfg.addr),
			hint: "set --http-token (REACTOR_HTTP_TOKEN) to require it, or listen on 127.0.0.1"}
	}
	return cfg, nil
}

func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// newHTTPMux is what the HTTP listener serves. Another handler (the web
// console, at "/") mounts here with one line.
func newHTTPMux(ingestHandler http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/v1/", ingestHandler)
	return mux
}

// requireToken lets through the requests that carry token, as a Bearer
// token or as the password of basic auth (the user name is not checked),
// and answers the others 401 with one log line (never the token). An empty
// token lets everything through: loopback listeners only.
func requireToken(token string, logger *slog.Logger, m *ingest.Metrics, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var got, reason string
		_, pass, basic := r.BasicAuth()
		bearer, isBearer := cutBearer(r.Header.Get("Authorization"))
		switch {
		case basic:
			got, reason = pass, "wrong token (basic auth password)"
		case isBearer:
			got, reason = bearer, "wrong token (Bearer)"
		case r.Header.Get("Authorization") != "":
			reason = "unsupported Authorization scheme: want Bearer or Basic"
		default:
			reason = "no token: send 'Authorization: Bearer TOKEN' (or basic auth with the token as password)"
		}
		if got != "" && subtle.ConstantTimeCompare([]byte(got), want) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		logger.Warn("http request rejected", "path", r.URL.Path, "code", http.StatusUnauthorized, "remote", r.RemoteAddr, "reason", reason)
		m.Request(ingest.Endpoint(r.URL.Path), http.StatusUnauthorized)
		// One challenge a line, Basic first: browsers answer Basic with
		// their sign-in dialog (the token is the password), and Chromium
		// ignores a line that starts with a scheme it does not know.
		w.Header().Set("WWW-Authenticate", `Basic realm="reactor", charset="UTF-8"`)
		w.Header().Add("WWW-Authenticate", `Bearer realm="reactor"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(ingest.ErrorResponse{Error: reason})
	})
}

// cutBearer returns the token of an "Authorization: Bearer TOKEN" header
// (the scheme is case-insensitive, RFC 9110).
func cutBearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// httpServer is the running HTTP listener.
type httpServer struct {
	srv  *http.Server
	url  string
	done chan error
	once sync.Once
	err  error
}

// startHTTP listens on cfg.addr and serves h there, behind the token check.
func startHTTP(cfg httpConfig, h http.Handler, logger *slog.Logger, m *ingest.Metrics) (*httpServer, error) {
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return nil, withHint(fmt.Errorf("cannot listen on %s: %w", cfg.addr, err), "choose another --http address")
	}
	s := &httpServer{
		srv: &http.Server{
			Handler:           requireToken(cfg.token, logger, m, h),
			ReadHeaderTimeout: httpReadHeaderTimeout,
			ReadTimeout:       httpReadTimeout,
			WriteTimeout:      httpWriteTimeout,
			IdleTimeout:       httpIdleTimeout,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		url:  "http://" + ln.Addr().String(),
		done: make(chan error, 1),
	}
	if cfg.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			_ = ln.Close()
			return nil, &exitError{code: exitUsage, err: fmt.Errorf("load --http-tls-cert/--http-tls-key: %w", err)}
		}
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, s.srv.TLSConfig)
		s.url = "https://" + ln.Addr().String()
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// stop stops accepting requests and waits up to timeout for those in
// flight, whose alerts are then stored or answered 503. Safe to call more
// than once; every call waits for the end.
func (s *httpServer) stop(timeout time.Duration) error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		err := s.srv.Shutdown(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("http: requests still in flight after %s: closed", timeout)
			_ = s.srv.Close()
		}
		if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		s.err = err
	})
	return s.err
}

// announce prints where ingest listens.
func (s *httpServer) announce(w io.Writer) {
	fmt.Fprintf(w, "reactor: HTTP ingest on %s/v1/ (alertmanager, grafana, alerts)\n", s.url)
	fmt.Fprintf(w, "reactor: web console on %s/\n", s.url)
}
