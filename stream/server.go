package stream

import (
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
)

// ServerConfig configures the embedded NATS server. The zero value is valid
// apart from DataDir.
type ServerConfig struct {
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

func (c ServerConfig) withDefaults() ServerConfig {
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.Port == 0 {
		c.Port = 4222
	}
	if c.ServerName == "" {
		c.ServerName = "reactor"
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 10 * time.Second
	}
	if c.Cluster.Name != "" && c.Cluster.Host == "" {
		c.Cluster.Host = "127.0.0.1"
	}
	return c
}

// ErrInsecureListen is returned when the embedded server would listen on a
// non-loopback address without authentication.
var ErrInsecureListen = errors.New("stream: refusing to listen on a non-loopback address without auth (set a user/password or token)")

func (c ServerConfig) validate() error {
	if c.DataDir == "" {
		return errors.New("stream: embedded server needs a data dir")
	}
	if c.User != "" && c.Password == "" {
		return errors.New("stream: user set without a password")
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
	cfg    ServerConfig
	lock   *dirLock
	unlock sync.Once
}

// StartServer starts an embedded server and waits until it accepts
// connections. It holds the data dir's LockFile until Shutdown: if another
// process (or Server) holds it, StartServer returns a *DataDirInUseError
// without touching the dir.
func StartServer(cfg ServerConfig) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// Lock the data dir before anything else touches it, the mode included:
	// a second process on it fails and leaves it as it was.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("stream: create data dir: %w", err)
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

func startServer(cfg ServerConfig) (*Server, error) {
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
		return nil, fmt.Errorf("stream: configure embedded server: %w", err)
	}
	ns.SetLoggerV2(&slogAdapter{l: cfg.Logger}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("stream: embedded server not ready after %s (is %s:%d in use?)", cfg.ReadyTimeout, cfg.Host, cfg.Port)
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

// Connect opens an in-process client connection to the server.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(s.ns)}, opts...)
	if s.cfg.User != "" {
		opts = append(opts, nats.UserInfo(s.cfg.User, s.cfg.Password))
	}
	if s.cfg.Token != "" {
		opts = append(opts, nats.Token(s.cfg.Token))
	}
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("stream: connect in-process: %w", err)
	}
	return nc, nil
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
		return fmt.Errorf("stream: create data dir: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("stream: data dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("stream: data dir %s is not a directory", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("stream: make data dir private: %w", err)
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
