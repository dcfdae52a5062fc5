package streamtest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/embedded"
)

// Account is the account streams live in on servers without accounts
// configured, as the cluster helpers look them up.
const Account = server.DEFAULT_GLOBAL_ACCOUNT

// Cluster is a cluster of embedded JetStream servers on 127.0.0.1, for tests
// of replicated streams and failover. Each server keeps its client and route
// port and its store for its whole life, so a killed server restarts as the
// same cluster member.
type Cluster struct {
	t     testing.TB
	name  string
	mu    sync.Mutex
	nodes []*clusterNode
}

type clusterNode struct {
	cfg embedded.Config
	srv *embedded.Server // nil while down
}

// NewCluster starts n clustered servers and waits until the cluster has a
// meta leader and every server is current. They are shut down by t.Cleanup.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return NewClusterWith(t, n, embedded.Config{})
}

// NewClusterWith is NewCluster with a base config for every server (Logger,
// SyncAlways, ...). DataDir, Host, Port, ServerName and Cluster are the
// cluster's own: each server gets a fresh t.TempDir() store, free client and
// route ports on 127.0.0.1, and the name "<cluster>-<i>".
func NewClusterWith(t testing.TB, n int, base embedded.Config) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("streamtest: cluster of %d servers", n)
	}
	// Routes must be known up front, so the ports are picked before any
	// server starts. Another process may take one of them in between: start
	// over with new ports then.
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		var c *Cluster
		if c, err = startCluster(t, n, base); err == nil {
			t.Cleanup(c.shutdown)
			c.WaitReady(30 * time.Second)
			return c
		}
		t.Logf("streamtest: start cluster (attempt %d): %v", attempt, err)
	}
	t.Fatalf("streamtest: start cluster: %v", err)
	return nil
}

func startCluster(t testing.TB, n int, base embedded.Config) (*Cluster, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("rc%d", ports[0])
	c := &Cluster{t: t, name: name}
	routes := make([]string, n)
	for i := range n {
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[n+i])
	}
	for i := range n {
		cfg := base
		cfg.DataDir = t.TempDir()
		cfg.Host = "127.0.0.1"
		cfg.Port = ports[i]
		cfg.DontListen = false
		cfg.ServerName = fmt.Sprintf("%s-%d", name, i)
		cfg.Cluster = embedded.ClusterConfig{
			Name:   name,
			Host:   "127.0.0.1",
			Port:   ports[n+i],
			Routes: routes,
		}
		c.nodes = append(c.nodes, &clusterNode{cfg: cfg})
	}
	for i, node := range c.nodes {
		srv, err := embedded.Start(node.cfg)
		if err != nil {
			c.shutdown()
			return nil, fmt.Errorf("server %d: %w", i, err)
		}
		node.srv = srv
	}
	return c, nil
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (c *Cluster) shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var wg sync.WaitGroup
	for _, node := range c.nodes {
		if node.srv != nil {
			wg.Add(1)
			go func(s *embedded.Server) {
				defer wg.Done()
				s.Shutdown()
			}(node.srv)
			node.srv = nil
		}
	}
	wg.Wait()
}

// Name is the cluster name.
func (c *Cluster) Name() string { return c.name }

// Size is the number of servers, running or not.
func (c *Cluster) Size() int { return len(c.nodes) }

// Server returns server i, or nil while it is down.
func (c *Cluster) Server(i int) *embedded.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// DataDir is server i's store.
func (c *Cluster) DataDir(i int) string { return c.nodes[i].cfg.DataDir }

// ServerName is server i's name.
func (c *Cluster) ServerName(i int) string { return c.nodes[i].cfg.ServerName }

// ClientURLs lists every server's client URL, comma-separated, as a client
// of an external cluster is configured. The ports are fixed, so the list
// holds for servers that are down too.
func (c *Cluster) ClientURLs() string {
	urls := make([]string, len(c.nodes))
	for i, node := range c.nodes {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", node.cfg.Port)
	}
	return strings.Join(urls, ",")
}

// Connect opens a client connection by URL to the whole cluster, closed by
// t.Cleanup before the servers shut down.
func (c *Cluster) Connect(t testing.TB) *stream.Conn {
	t.Helper()
	return Connect(t, c.ClientURLs())
}

// Kill shuts server i down and waits until it is down. That is a stop, not
// a crash: the server first hands each raft leadership it holds to a
// follower, its clients are disconnected and its store is flushed, not
// torn. ProcessCluster.Kill is the crash.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	c.mu.Lock()
	srv := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if srv == nil {
		c.t.Fatalf("streamtest: kill server %d: already down", i)
	}
	srv.Shutdown()
}

// Restart starts server i again on its store and ports and waits until it
// accepts connections. It does not wait for it to catch up: see WaitReady
// and WaitStreamCurrent.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	node := c.nodes[i]
	if node.srv != nil {
		c.t.Fatalf("streamtest: restart server %d: still running", i)
	}
	// The ports were just released by this server; the OS may take a moment
	// to hand them back, hence a few attempts.
	var err error
	for range 20 {
		if node.srv, err = embedded.Start(node.cfg); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("streamtest: restart server %d: %v", i, err)
}

// running returns the servers that are up, by index.
func (c *Cluster) running() map[int]*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	up := make(map[int]*server.Server, len(c.nodes))
	for i, node := range c.nodes {
		if node.srv != nil {
			up[i] = node.srv.NATS()
		}
	}
	return up
}

// leaderOf returns the index of the running server for which is holds, or -1.
func (c *Cluster) leaderOf(is func(*server.Server) bool) int {
	for i, ns := range c.running() {
		if is(ns) {
			return i
		}
	}
	return -1
}

// MetaLeader is the index of the JetStream meta leader, or -1 if there is
// none right now.
func (c *Cluster) MetaLeader() int {
	return c.leaderOf(func(ns *server.Server) bool { return ns.JetStreamIsLeader() })
}

// StreamLeader is the index of the leader of stream, or -1.
func (c *Cluster) StreamLeader(name string) int {
	return c.leaderOf(func(ns *server.Server) bool { return ns.JetStreamIsStreamLeader(Account, name) })
}

// ConsumerLeader is the index of the leader of consumer on stream, or -1.
func (c *Cluster) ConsumerLeader(streamName, consumer string) int {
	return c.leaderOf(func(ns *server.Server) bool {
		return ns.JetStreamIsConsumerLeader(Account, streamName, consumer)
	})
}

// WaitReady waits until the cluster has a meta leader that knows every
// server as a peer, and every running server is current with it.
func (c *Cluster) WaitReady(timeout time.Duration) {
	c.t.Helper()
	Eventually(c.t, timeout, func() error {
		leader := c.MetaLeader()
		if leader < 0 {
			return errors.New("no meta leader")
		}
		up := c.running()
		if n := len(up[leader].JetStreamClusterPeers()); n != len(c.nodes) {
			return fmt.Errorf("meta leader %s has %d peers", up[leader].Name(), n)
		}
		for _, ns := range up {
			if !ns.JetStreamIsCurrent() {
				return fmt.Errorf("server %s not current", ns.Name())
			}
		}
		return nil
	}, "cluster %s: a meta leader with %d current peers", c.name, len(c.nodes))
}

// WaitLeader waits until stream has a leader and returns its index.
func (c *Cluster) WaitLeader(timeout time.Duration, streamName string) int {
	c.t.Helper()
	leader := -1
	Eventually(c.t, timeout, func() error {
		if leader = c.StreamLeader(streamName); leader < 0 {
			return errors.New("no leader")
		}
		return nil
	}, "cluster %s: a leader for stream %s", c.name, streamName)
	return leader
}

// WaitStreamCurrent waits until every running server has a current replica
// of each of the streams (caught up with its leader).
func (c *Cluster) WaitStreamCurrent(timeout time.Duration, streams ...string) {
	c.t.Helper()
	Eventually(c.t, timeout, func() error {
		for _, ns := range c.running() {
			for _, name := range streams {
				if !ns.JetStreamIsStreamCurrent(Account, name) {
					return fmt.Errorf("stream %s not current on %s", name, ns.Name())
				}
			}
		}
		return nil
	}, "cluster %s: streams %v current on every server", c.name, streams)
}
