// Package brokertest is the test support shared by the built-in broker
// transports' tests (nats, amqp, mqtt, redis). It owns:
//
//   - the service rule: Require checks that a local broker is reachable
//     and otherwise skips the test, or fails it when CI=true, naming the
//     service and its address;
//   - network fixtures that produce failures on demand: a closed port
//     (connection refused), a silent server (accepts, never answers: the
//     attempt times out) and a proxy whose connections can be cut (the
//     transport must notice and reconnect);
//   - running a registered built-in transport as a real plugin subprocess
//     of the test binary (ServePluginIfAsked in TestMain, StartPlugin in
//     the test), through the same go-plugin handshake the agent uses;
//   - unique names for subjects, queues, topics and streams.
//
// It is imported by tests only.
package brokertest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/hookwire/hookwire/plugins/sdk"
)

// dialTimeout bounds the reachability check of a service.
const dialTimeout = 500 * time.Millisecond

// Require checks that the named service answers TCP connections at addr
// (host:port). If it does not, the test is skipped, or failed when the
// environment variable CI is "true", with a message naming the service and
// the address.
func Require(t testing.TB, service, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err == nil {
		_ = conn.Close()
		return
	}
	msg := fmt.Sprintf("%s is not reachable at %s (%v); start it to run this test (.ci/run starts it when it is down)", service, addr, err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
		return
	}
	t.Skip(msg)
}

// UniqueName returns prefix followed by a random suffix, made only of
// lower-case letters, digits and hyphens so it is valid as a NATS subject
// token, AMQP queue name, MQTT topic level and Redis key alike.
func UniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// ClosedAddr returns a loopback host:port on which nothing listens, so a
// dial is refused at once.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return addr
}

// SilentAddr returns the host:port of a server that accepts connections and
// never sends a byte, so a client waits for the broker's greeting or answer
// until its own deadline. Everything stops when the test ends.
func SilentAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// Proxy forwards TCP connections to a broker and can cut them all, to
// prove that a transport notices a broken connection and dials again.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	pairs map[net.Conn]net.Conn // client side -> broker side
	wg    sync.WaitGroup
}

// NewProxy starts a proxy to target (host:port) on a loopback port; it
// stops when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, pairs: make(map[net.Conn]net.Conn)}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Connections returns how many client connections the proxy has accepted
// and not yet cut.
func (p *Proxy) Connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pairs)
}

// Cut closes every proxied connection (both sides). New connections are
// still accepted.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c, b := range p.pairs {
		_ = c.Close()
		_ = b.Close()
		delete(p.pairs, c)
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.pairs[c] = b
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, b)
		go p.pipe(b, c)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// pluginEnv names the built-in a re-executed test binary should serve.
const pluginEnv = "HOOKWIRE_BROKERTEST_SERVE_BUILTIN"

// ServePluginIfAsked must be called first in TestMain. In a test binary
// started by StartPlugin it serves the requested built-in through serve
// (builtin.Serve) and exits; otherwise it returns at once.
func ServePluginIfAsked(serve func(name string) error) {
	name := os.Getenv(pluginEnv)
	if name == "" {
		return
	}
	if err := serve(name); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Loopback is the egress policy of tests that deliver to the local brokers:
// 127.0.0.1 only, as an agent started with --allow-cidr 127.0.0.1/32.
func Loopback() sdk.Egress {
	return sdk.Egress{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
}

// StartPlugin runs the registered built-in transport name as a plugin
// subprocess (this test binary re-executed, serving it as `hookwire plugin
// <name>` does) and returns the host-side client, which talks to it over
// go-plugin gRPC exactly as the agent does. The process gets egress as the
// agent passes it to every plugin (sdk.EgressEnv). It is stopped when the
// test ends.
func StartPlugin(t testing.TB, name string, egress sdk.Egress) *sdk.Client {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("find test binary: %v", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), pluginEnv+"="+name, egress.Environ())
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.VersionedPlugins(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     30 * time.Second,
		Logger:           hclog.NewNullLogger(),
		SyncStderr:       testWriter{t},
	})
	proto, err := client.Client()
	if err != nil {
		client.Kill()
		t.Fatalf("start built-in %q as a plugin: %v", name, err)
	}
	raw, err := proto.Dispense(sdk.PluginName)
	if err != nil {
		client.Kill()
		t.Fatalf("dispense %q from built-in %q: %v", sdk.PluginName, name, err)
	}
	c, ok := raw.(*sdk.Client)
	if !ok {
		client.Kill()
		t.Fatalf("dispensed %T from built-in %q, want *sdk.Client", raw, name)
	}
	t.Cleanup(func() {
		_ = c.Close()
		client.Kill()
		if !client.Exited() {
			t.Errorf("plugin process for %q still running after Kill", name)
		}
	})
	return c
}

// testWriter sends the plugin's stderr to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("plugin stderr: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// RequireBinary returns the path of an installed program a test needs. A
// missing one follows the service rule: skip, or fail when CI=true.
func RequireBinary(t testing.TB, bin string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		msg := fmt.Sprintf("%s is not installed (%v); install it to run this test", bin, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
			return ""
		}
		t.Skip(msg)
	}
	return path
}

// FreePort returns a loopback TCP port that was free a moment ago, for a
// server a test starts itself.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return port
}

// StartServer runs a broker binary for one test (for configurations the
// shared local broker does not have: authentication, permissions, memory
// limits), waits until a line of its output contains ready, and stops it
// when the test ends. A missing binary follows the service rule: skip, or
// fail when CI=true.
func StartServer(t testing.TB, ready, bin string, args ...string) {
	t.Helper()
	path := RequireBinary(t, bin)
	pr, pw := io.Pipe()
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() {
		exited <- cmd.Wait()
		_ = pw.Close()
	}()

	readyc := make(chan struct{})
	scanned := make(chan struct{})
	var mu sync.Mutex
	var output strings.Builder
	go func() {
		defer close(scanned)
		buf := make([]byte, 0, 4096)
		var once sync.Once
		chunk := make([]byte, 1024)
		for {
			n, err := pr.Read(chunk)
			buf = append(buf, chunk[:n]...)
			mu.Lock()
			output.Write(chunk[:n])
			mu.Unlock()
			if strings.Contains(string(buf), ready) {
				once.Do(func() { close(readyc) })
				buf = buf[:0]
			} else if len(buf) > len(ready) {
				buf = append(buf[:0], buf[len(buf)-len(ready):]...)
			}
			if err != nil {
				return
			}
		}
	}()
	stop := func() {
		_ = cmd.Process.Kill()
		<-scanned
	}
	select {
	case <-readyc:
	case err := <-exited:
		<-scanned
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%s exited before it was ready (%v): %s", bin, err, output.String())
	case <-time.After(20 * time.Second):
		stop()
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%s was not ready within 20s: %s", bin, output.String())
	}
	t.Cleanup(stop)
}
