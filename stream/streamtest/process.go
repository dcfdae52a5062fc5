package streamtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactor-alerts/reactor/stream"
)

// ProcessCluster is a cluster of nats-server processes on 127.0.0.1, for
// the soak's crash tests: Kill sends SIGKILL, so a killed server hands
// nothing over, as after a crash or a power loss (an in-process server
// always steps its leaders down when it shuts down; see Cluster.Kill). The
// nats-server binary is built from the module cache, the version go.mod
// requires. Leaders are looked up through the JetStream API.
type ProcessCluster struct {
	t     testing.TB
	name  string
	bin   string
	admin *stream.Conn
	net   processNet
	mu    sync.Mutex
	nodes []*processNode
}

// processNet is where a ProcessCluster's servers live: 127.0.0.1 by
// default, or a host and a command prefix per server (NetnsCluster's
// namespaces), with a dialer to reach them.
type processNet struct {
	host func(i int) string   // server i's address; 127.0.0.1 if nil
	wrap func(i int) []string // the command that runs server i's, if not nil
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

type processNode struct {
	name     string
	host     string
	port     int // client
	httpPort int // monitoring: /healthz
	conf     string
	log      string
	cmd      *exec.Cmd // nil while down
}

// NewProcessCluster builds nats-server and starts n clustered servers, each
// with its store in a fresh t.TempDir(), and waits until they are healthy.
// They are killed by t.Cleanup.
func NewProcessCluster(t testing.TB, n int) *ProcessCluster {
	t.Helper()
	return newProcessCluster(t, n, processNet{})
}

func newProcessCluster(t testing.TB, n int, pn processNet) *ProcessCluster {
	t.Helper()
	if pn.host == nil {
		pn.host = func(int) string { return "127.0.0.1" }
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "nats-server")
	build := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("streamtest: build nats-server: %v\n%s", err, out)
	}
	ports, err := freePorts(3 * n)
	if err != nil {
		t.Fatalf("streamtest: %v", err)
	}
	c := &ProcessCluster{t: t, name: fmt.Sprintf("pc%d", ports[0]), bin: bin, net: pn}
	routes := make([]string, n)
	for i := range n {
		routes[i] = fmt.Sprintf("nats://%s:%d", pn.host(i), ports[n+i])
	}
	for i := range n {
		node := &processNode{
			name:     fmt.Sprintf("%s-%d", c.name, i),
			host:     pn.host(i),
			port:     ports[i],
			httpPort: ports[2*n+i],
			conf:     filepath.Join(dir, fmt.Sprintf("server-%d.conf", i)),
			log:      filepath.Join(dir, fmt.Sprintf("server-%d.log", i)),
		}
		conf := fmt.Sprintf("server_name: %q\nlisten: \"%s:%d\"\nhttp: \"%s:%d\"\n"+
			"jetstream { store_dir: %q }\ncluster { name: %q, listen: \"%s:%d\", routes: [%s] }\n",
			node.name, node.host, node.port, node.host, node.httpPort, t.TempDir(), c.name, node.host, ports[n+i], strings.Join(routes, ", "))
		if err := os.WriteFile(node.conf, []byte(conf), 0o600); err != nil {
			t.Fatalf("streamtest: %v", err)
		}
		c.nodes = append(c.nodes, node)
	}
	t.Cleanup(c.shutdown)
	for i := range c.nodes {
		c.Restart(i)
	}
	c.WaitReady(60 * time.Second)
	c.admin = c.Connect(t)
	return c
}

func (c *ProcessCluster) shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, node := range c.nodes {
		if node.cmd != nil {
			_ = node.cmd.Process.Kill()
			_ = node.cmd.Wait()
			node.cmd = nil
		}
	}
}

// Size is the number of servers, running or not.
func (c *ProcessCluster) Size() int { return len(c.nodes) }

// ServerName is server i's name.
func (c *ProcessCluster) ServerName(i int) string { return c.nodes[i].name }

// ClientURLs lists every server's client URL, comma-separated.
func (c *ProcessCluster) ClientURLs() string {
	urls := make([]string, len(c.nodes))
	for i, node := range c.nodes {
		urls[i] = fmt.Sprintf("nats://%s:%d", node.host, node.port)
	}
	return strings.Join(urls, ",")
}

// Connect opens a client connection by URL to the whole cluster, closed by
// t.Cleanup before the servers are killed.
func (c *ProcessCluster) Connect(t testing.TB) *stream.Conn {
	t.Helper()
	if c.net.dial != nil {
		return connectDial(t, c.ClientURLs(), c.net.dial)
	}
	return Connect(t, c.ClientURLs())
}

// Kill sends server i SIGKILL and waits until it is gone.
func (c *ProcessCluster) Kill(i int) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	node := c.nodes[i]
	if node.cmd == nil {
		c.t.Fatalf("streamtest: kill server %d: already down", i)
	}
	if err := node.cmd.Process.Kill(); err != nil {
		c.t.Fatalf("streamtest: kill server %d: %v", i, err)
	}
	_ = node.cmd.Wait() // "signal: killed"
	node.cmd = nil
}

// Restart starts server i (again) on its store and ports. It does not wait
// for it to be healthy: see WaitReady.
func (c *ProcessCluster) Restart(i int) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	node := c.nodes[i]
	if node.cmd != nil {
		c.t.Fatalf("streamtest: restart server %d: still running", i)
	}
	log, err := os.OpenFile(node.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatalf("streamtest: %v", err)
	}
	defer log.Close() // the child has its copy
	args := []string{c.bin, "-c", node.conf}
	if c.net.wrap != nil {
		args = append(c.net.wrap(i), args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("streamtest: start server %d: %v", i, err)
	}
	node.cmd = cmd
}

// WaitReady waits until every running server reports itself healthy
// (/healthz: JetStream current with its meta leader, streams and
// consumers).
func (c *ProcessCluster) WaitReady(timeout time.Duration) {
	c.t.Helper()
	client := &http.Client{Timeout: time.Second}
	if c.net.dial != nil {
		client.Transport = &http.Transport{DialContext: c.net.dial}
	}
	Eventually(c.t, timeout, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, node := range c.nodes {
			if node.cmd == nil {
				continue
			}
			resp, err := client.Get(fmt.Sprintf("http://%s:%d/healthz", node.host, node.httpPort))
			if err != nil {
				return fmt.Errorf("server %s: %w", node.name, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("server %s: healthz %s", node.name, resp.Status)
			}
		}
		return nil
	}, "cluster %s: every server healthy", c.name)
}

// index returns the index of the server named name, or -1.
func (c *ProcessCluster) index(name string) int {
	for i, node := range c.nodes {
		if node.name == name {
			return i
		}
	}
	return -1
}

// StreamLeader is the index of the leader of stream, or -1.
func (c *ProcessCluster) StreamLeader(name string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := c.admin.JS.Stream(ctx, name)
	if err != nil || s.CachedInfo().Cluster == nil {
		return -1
	}
	return c.index(s.CachedInfo().Cluster.Leader)
}

// ConsumerLeader is the index of the leader of consumer on stream, or -1.
func (c *ProcessCluster) ConsumerLeader(streamName, consumer string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cons, err := c.admin.JS.Consumer(ctx, streamName, consumer)
	if err != nil || cons.CachedInfo().Cluster == nil {
		return -1
	}
	return c.index(cons.CachedInfo().Cluster.Leader)
}

// WaitStreamCurrent waits until each of the streams has a leader and every
// other running server a current replica.
func (c *ProcessCluster) WaitStreamCurrent(timeout time.Duration, streams ...string) {
	c.t.Helper()
	Eventually(c.t, timeout, func() error {
		c.mu.Lock()
		up := 0
		for _, node := range c.nodes {
			if node.cmd != nil {
				up++
			}
		}
		c.mu.Unlock()
		for _, name := range streams {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			info, err := streamInfo(ctx, c.admin.JS, name)
			cancel()
			if err != nil {
				return err
			}
			current := 0
			for _, r := range info.Cluster.Replicas {
				if r.Current && !r.Offline {
					current++
				}
			}
			if info.Cluster.Leader == "" || current < up-1 {
				return fmt.Errorf("stream %s: leader %q, %d of %d replicas current", name, info.Cluster.Leader, current, up-1)
			}
		}
		return nil
	}, "cluster %s: streams %v current on every server", c.name, streams)
}

func streamInfo(ctx context.Context, js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	info := s.CachedInfo()
	if info.Cluster == nil {
		return nil, errors.New("stream " + name + ": no cluster info")
	}
	return info, nil
}

// connectDial connects to url as Connect does, opening each connection
// with dial: for servers in network namespaces of the test's making.
func connectDial(t testing.TB, url string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *stream.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := stream.Open(ctx, stream.Config{URL: url, Name: t.Name(), Dialer: dialerFunc(dial)})
	if err != nil {
		t.Fatalf("streamtest: connect to %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// dialerFunc is a nats.CustomDialer.
type dialerFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (d dialerFunc) Dial(network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return d(ctx, network, addr)
}
