// Package embedded runs reactor's NATS server with JetStream inside the
// process: the data dir, its lock, clustering and the server's logs. Only a
// program that embeds the server imports it; package stream connects to it
// through Config.InProcess and otherwise links only nats.go.
package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/reactor-alerts/reactor/stream"
)

// Config configures the embedded NATS server. The zero value is valid
// apart from DataDir.
type Config struct {
	// DataDir holds the JetStream store. It is created with mode 0700 (and
	// tightened to 0700 if it exists with a looser mode). Required: an empty
	// store dir would silently put the data in the OS temp dir.
	DataDir string
	// Host is the client listener address. Defaults to "127.0.0.1". A
	// non-loopback host is refused unless User/Password or Token is set.
	Host string
	// Port is the client port. Defaults to 4222; -1 picks a free port.
	Port int
	// DontListen starts the server without a client listener: only
	// in-process connections reach it.
	DontListen bool
	// SyncAlways fsyncs every write before it is acknowledged. Defaults to
	// false: nats-server syncs every 2 minutes, and a power loss can lose
	// acknowledged writes of that window (a process crash does not).
	SyncAlways bool
	// User and Password, or Token, require clients to authenticate.
	User     string
	Password string
	Token    string
	// ServerName names the server. Defaults to "reactor".
	ServerName string
	// MaxPayload is the largest message accepted. Defaults to 1 MiB.
	MaxPayload int32
	// Cluster joins the server to a cluster of servers when Cluster.Name is
	// set.
	Cluster ClusterConfig
	// Logger receives the server's log lines. Defaults to discarding them.
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for the server to accept connections.
	// Defaults to 10s.
	ReadyTimeout time.Duration
}

// ClusterConfig clusters embedded servers, for replicated streams.
type ClusterConfig struct {
	// Name of the cluster; empty means no clustering.
	Name string
	// Host and Port of the route listener. Host defaults to "127.0.0.1";
	// Port -1 picks a free one.
	Host string
	Port int
	// Routes are the other servers' route URLs, e.g. "nats://127.0.0.1:6222".
	Routes []string
}

// Config's defaults.
const (
	HostDefault         = "127.0.0.1"
	PortDefault         = 4222
	ServerNameDefault   = "reactor"
	MaxPayloadDefault   = 1 << 20
	ReadyTimeoutDefault = 10 * time.Second
)

func (c Config) withDefaults() Config {
	if c.Host == "" {
		c.Host = HostDefault
	}
	if c.Port == 0 {
		c.Port = PortDefault
	}
	if c.ServerName == "" {
		c.ServerName = ServerNameDefault
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = MaxPayloadDefault
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = ReadyTimeoutDefault
	}
	if c.Cluster.Name != "" && c.Cluster.Host == "" {
		c.Cluster.Host = HostDefault
	}
	return c
}

// ErrInsecureListen is returned when the embedded server would listen on a
// non-loopback address without authentication.
var ErrInsecureListen = errors.New("embedded: refusing to listen on a non-loopback address without auth (set a user/password or token)")

func (c Config) validate() error {
	if c.DataDir == "" {
		return errors.New("embedded: the server needs a data dir")
	}
	if c.User != "" && c.Password == "" {
		return errors.New("embedded: user set without a password")
	}
	if !c.DontListen && !isLoopback(c.Host) && c.User == "" && c.Token == "" {
		return fmt.Errorf("%w: %s", ErrInsecureListen, c.Host)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Server is an embedded nats-server with JetStream on file storage.
type Server struct {
	ns     *server.Server
	cfg    Config
	lock   *dirLock
	unlock sync.Once
}

// Start starts an embedded server and waits until it accepts connections.
// It holds the data dir's LockFile until Shutdown: if another process (or
// Server) holds it, Start returns a *DataDirInUseError without touching the
// dir.
func Start(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// Lock the data dir before anything else touches it, the mode included:
	// a second process on it fails and leaves it as it was.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded: create data dir: %w", err)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	srv, err := startServer(cfg)
	if err != nil {
		lock.unlock()
		return nil, err
	}
	srv.lock = lock
	return srv, nil
}

func startServer(cfg Config) (*Server, error) {
	if err := ensurePrivateDir(cfg.DataDir); err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName:            cfg.ServerName,
		Host:                  cfg.Host,
		Port:                  cfg.Port,
		DontListen:            cfg.DontListen,
		JetStream:             true,
		StoreDir:              cfg.DataDir,
		SyncAlways:            cfg.SyncAlways,
		MaxPayload:            cfg.MaxPayload,
		Username:              cfg.User,
		Password:              cfg.Password,
		Authorization:         cfg.Token,
		NoSigs:                true,
		DisableShortFirstPing: true,
	}
	if cfg.Cluster.Name != "" {
		opts.Cluster.Name = cfg.Cluster.Name
		opts.Cluster.Host = cfg.Cluster.Host
		opts.Cluster.Port = cfg.Cluster.Port
		opts.Routes = server.RoutesFromStr(strings.Join(cfg.Cluster.Routes, ","))
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded: configure the server: %w", err)
	}
	ns.SetLoggerV2(&slogAdapter{l: cfg.Logger}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("embedded: server not ready after %s (is %s:%d in use?)", cfg.ReadyTimeout, cfg.Host, cfg.Port)
	}
	return &Server{ns: ns, cfg: cfg}, nil
}

// ClientURL is the URL other processes connect to, or "" without a listener.
func (s *Server) ClientURL() string {
	if s.cfg.DontListen {
		return ""
	}
	return s.ns.ClientURL()
}

// ClusterURL is the route URL other cluster members connect to.
func (s *Server) ClusterURL() string {
	if s.cfg.Cluster.Name == "" {
		return ""
	}
	addr := s.ns.ClusterAddr()
	if addr == nil {
		return ""
	}
	return fmt.Sprintf("nats://%s:%d", s.cfg.Cluster.Host, addr.Port)
}

// InProcessConn is a client connection to the server without the network:
// it makes Server a nats.InProcessConnProvider, for stream.Config.InProcess.
func (s *Server) InProcessConn() (net.Conn, error) { return s.ns.InProcessConn() }

// Auth is the credentials the server requires of its clients, for
// stream.Config.Auth.
func (s *Server) Auth() stream.Auth {
	return stream.Auth{User: s.cfg.User, Password: s.cfg.Password, Token: s.cfg.Token}
}

// DataDir is the server's store.
func (s *Server) DataDir() string { return s.cfg.DataDir }

// Open starts an embedded server and connects to it in process, with its
// credentials; scfg says the rest (Name, Logger). The Conn owns the server:
// closing it shuts the server down, and conn.InProcess is the *Server.
// cfg.Logger defaults to scfg.Logger.
func Open(ctx context.Context, cfg Config, scfg stream.Config) (*stream.Conn, error) {
	if cfg.Logger == nil {
		cfg.Logger = scfg.Logger
	}
	srv, err := Start(cfg)
	if err != nil {
		return nil, err
	}
	scfg.URL = ""
	scfg.InProcess = srv
	scfg.OwnInProcess = true
	scfg.Auth = srv.Auth()
	conn, err := stream.Open(ctx, scfg)
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	if err := srv.answer(conn.NC); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

// Store is the server's JetStream file storage, used against its limit
// (75% of the disk's free space when it started, plus 75% of the store it
// found there), the disk's free space, and the first stream write error
// the server reports.
func (s *Server) Store() stream.ServerStore {
	var st stream.ServerStore
	if info, err := s.ns.Jsz(nil); err == nil && !info.Disabled {
		st.Used, st.Limit = info.Store, uint64(max(info.Config.MaxStore, 0))
	}
	st.DiskFree = diskFree(s.cfg.DataDir)
	if h := s.ns.Healthz(&server.HealthzOptions{Details: true}); h != nil {
		for _, e := range h.Errors {
			if e.Type == server.HealthzErrorStream && strings.Contains(e.Error, "write error") {
				st.WriteError, st.WriteErrorStream = e.Error, e.Stream
				break
			}
		}
	}
	return st
}

// answer answers requests on stream.EmbeddedServerSubject with the data
// dir and Store,
// on nc, until nc closes: clients of the server read its limit there.
func (s *Server) answer(nc *nats.Conn) error {
	_, err := nc.Subscribe(stream.EmbeddedServerSubject(s.ns.ID()), func(m *nats.Msg) {
		data, _ := json.Marshal(stream.EmbeddedServer{DataDir: s.cfg.DataDir, Store: s.Store()}) // plain fields
		_ = m.Respond(data)                                                                      // the requester went away
	})
	if err != nil {
		return fmt.Errorf("embedded: answer questions about the server: %w", err)
	}
	return nil
}

// NATS returns the underlying nats-server, for tests and diagnostics.
func (s *Server) NATS() *server.Server { return s.ns }

// Shutdown stops the server, flushing the store, waits until it is down and
// releases the data dir.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	s.unlock.Do(s.lock.unlock)
}

func ensurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("embedded: create data dir: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("embedded: data dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("embedded: data dir %s is not a directory", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("embedded: make data dir private: %w", err)
		}
	}
	return nil
}

// slogAdapter routes nats-server's log lines to slog: a constant message,
// the server's own formatted line in the "text" attribute.
type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(format string, v ...any) {
	a.l.Info("nats-server", "text", fmt.Sprintf(format, v...))
}
func (a *slogAdapter) Warnf(format string, v ...any) {
	a.l.Warn("nats-server", "text", fmt.Sprintf(format, v...))
}
func (a *slogAdapter) Fatalf(format string, v ...any) {
	a.l.Error("nats-server", "text", fmt.Sprintf(format, v...))
}
func (a *slogAdapter) Errorf(format string, v ...any) {
	a.l.Error("nats-server", "text", fmt.Sprintf(format, v...))
}
func (a *slogAdapter) Debugf(format string, v ...any) {
	a.l.Debug("nats-server", "text", fmt.Sprintf(format, v...))
}
func (a *slogAdapter) Tracef(format string, v ...any) {
	a.l.Debug("nats-server", "text", fmt.Sprintf(format, v...))
}
