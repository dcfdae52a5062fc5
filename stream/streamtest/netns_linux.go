package streamtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// NetnsCluster is a ProcessCluster whose servers run each in a network
// namespace of its own, joined by veth pairs to a bridge in a hub
// namespace, on addresses of 198.18.0.0/15 (RFC 2544's range for
// benchmarks: no one else's). Clients reach the servers from the hub,
// through sockets the test opens in it (Connect). Partition cuts a server
// off from the other servers and from every client; Heal joins it again.
// Nothing reaches beyond the hub: no route leads anywhere else.
//
// Linux only, as root with iproute2 (`ip`): NewNetnsCluster skips the test
// when it cannot make namespaces.
type NetnsCluster struct {
	*ProcessCluster
	prefix string // of every namespace and interface name, unique per cluster
}

// NewNetnsCluster makes the namespaces, builds nats-server and starts n
// clustered servers in them, and waits until they are healthy. t.Cleanup
// kills the servers and deletes the namespaces.
func NewNetnsCluster(t testing.TB, n int) *NetnsCluster {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("streamtest: no `ip` command (iproute2) to make network namespaces: apt-get install -y iproute2")
	}
	// Names are at most 15 bytes (interfaces): a prefix of 9.
	c := &NetnsCluster{prefix: fmt.Sprintf("rx%07d", os.Getpid()%10_000_000)}
	subnet := fmt.Sprintf("198.18.%d", os.Getpid()%250+1)
	hub := c.prefix + "h"
	if out, err := exec.Command("ip", "netns", "add", hub).CombinedOutput(); err != nil {
		t.Skipf("streamtest: cannot make a network namespace (root is needed): %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { c.deleteNamespaces(n) })
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("streamtest: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	ip("-n", hub, "link", "set", "lo", "up")
	ip("-n", hub, "link", "add", "br0", "type", "bridge")
	ip("-n", hub, "addr", "add", subnet+".254/24", "dev", "br0")
	ip("-n", hub, "link", "set", "br0", "up")
	for i := range n {
		ns, veth, peer := c.server(i), c.prefix+fmt.Sprintf("v%d", i), c.hubSide(i)
		ip("netns", "add", ns)
		ip("link", "add", veth, "netns", ns, "type", "veth", "peer", "name", peer, "netns", hub)
		ip("-n", ns, "link", "set", "lo", "up")
		ip("-n", ns, "addr", "add", fmt.Sprintf("%s.%d/24", subnet, i+1), "dev", veth)
		ip("-n", ns, "link", "set", veth, "up")
		ip("-n", hub, "link", "set", peer, "master", "br0")
		ip("-n", hub, "link", "set", peer, "up")
	}
	c.ProcessCluster = newProcessCluster(t, n, processNet{
		host: func(i int) string { return fmt.Sprintf("%s.%d", subnet, i+1) },
		wrap: func(i int) []string { return []string{"ip", "netns", "exec", c.server(i)} },
		dial: dialIn("/run/netns/" + hub),
	})
	return c
}

// server is the namespace of server i; hubSide its veth's end in the hub.
func (c *NetnsCluster) server(i int) string  { return fmt.Sprintf("%ss%d", c.prefix, i) }
func (c *NetnsCluster) hubSide(i int) string { return fmt.Sprintf("%sp%d", c.prefix, i) }

// Partition cuts server i off: its link to the hub goes down, and nothing
// reaches it or leaves it, while it runs on.
func (c *NetnsCluster) Partition(i int) { c.link(i, "down") }

// Heal joins server i to the others and to the clients again.
func (c *NetnsCluster) Heal(i int) { c.link(i, "up") }

func (c *NetnsCluster) link(i int, state string) {
	c.t.Helper()
	if out, err := exec.Command("ip", "-n", c.prefix+"h", "link", "set", c.hubSide(i), state).CombinedOutput(); err != nil {
		c.t.Fatalf("streamtest: link of server %d %s: %v: %s", i, state, err, strings.TrimSpace(string(out)))
	}
}

// deleteNamespaces deletes the hub and the servers' namespaces (and so
// their interfaces), after the servers are killed: registered first, the
// cleanup runs last.
func (c *NetnsCluster) deleteNamespaces(n int) {
	_ = exec.Command("ip", "netns", "del", c.prefix+"h").Run()
	for i := range n {
		_ = exec.Command("ip", "netns", "del", c.server(i)).Run()
	}
}

// dialIn returns a dialer whose sockets are made in the network namespace
// at path: the thread that makes one enters the namespace for the while,
// and a socket stays in the namespace it was made in.
func dialIn(path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer home.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("enter network namespace %s: %w", path, err)
		}
		var d net.Dialer
		conn, dialErr := d.DialContext(ctx, network, addr)
		if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked, and is ended with its goroutine:
			// it must not run anything else in the wrong namespace.
			if conn != nil {
				conn.Close()
			}
			return nil, fmt.Errorf("leave network namespace %s: %w", path, err)
		}
		runtime.UnlockOSThread()
		return conn, dialErr
	}
}
