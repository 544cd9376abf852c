package brokertest

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder stands in for a test to see whether Require skips or fails.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()               {}
func (r *recorder) Skip(args ...any)      { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Fatal(args ...any)     { r.failed = fmt.Sprint(args...) }
func (r *recorder) Cleanup(f func())      { r.TB.Cleanup(f) }
func (r *recorder) Fatalf(string, ...any) { r.failed = "fatalf" }

func TestRequireSkipsLocallyAndFailsInCI(t *testing.T) {
	addr := ClosedAddr(t)

	t.Setenv("CI", "")
	r := &recorder{TB: t}
	Require(r, "Example broker", addr)
	if r.failed != "" || !strings.Contains(r.skipped, "Example broker is not reachable at "+addr) {
		t.Errorf("outside CI: skipped=%q failed=%q; want a skip naming the service and address", r.skipped, r.failed)
	}

	t.Setenv("CI", "true")
	r = &recorder{TB: t}
	Require(r, "Example broker", addr)
	if r.skipped != "" || !strings.Contains(r.failed, "Example broker is not reachable at "+addr) {
		t.Errorf("in CI: skipped=%q failed=%q; want a failure naming the service and address", r.skipped, r.failed)
	}

	r = &recorder{TB: t}
	Require(r, "Example broker", SilentAddr(t)) // listening: reachable
	if r.skipped != "" || r.failed != "" {
		t.Errorf("reachable service: skipped=%q failed=%q", r.skipped, r.failed)
	}
}

func TestProxyForwardsAndCuts(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := echo.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(c, c)
		_ = c.Close()
	}()
	defer func() { _ = echo.Close(); <-done }()

	p := NewProxy(t, echo.Addr().String())
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo through the proxy = %q, %v", buf, err)
	}
	if p.Connections() != 1 {
		t.Errorf("Connections = %d, want 1", p.Connections())
	}
	p.Cut()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf); err == nil {
		t.Error("the connection still works after Cut")
	}
}
