package sdk_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookwire/hookwire/plugins/sdk"
)

// listen starts a listener that accepts connections; everything stops
// when the test ends.
func listen(t *testing.T, network, address string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	accepted := make(chan net.Conn, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case accepted <- c:
			default:
				_ = c.Close()
			}
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		for len(accepted) > 0 {
			_ = (<-accepted).Close()
		}
	})
	return ln
}

func loopbackOnly(t *testing.T) sdk.Egress {
	t.Helper()
	cidrs, err := sdk.ParseCIDRs([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return sdk.Egress{AllowCIDRs: cidrs}
}

func TestDialerRefusesLoopbackUnlessAllowed(t *testing.T) {
	ln := listen(t, "tcp", "127.0.0.1:0")
	ctx := context.Background()

	_, err := sdk.NewDialer("redis", sdk.Egress{}).DialContext(ctx, "tcp", ln.Addr().String())
	var denied *sdk.DeniedAddressError
	if !errors.As(err, &denied) {
		t.Fatalf("dial %s without an allow-list = %v, want a *DeniedAddressError", ln.Addr(), err)
	}
	for _, want := range []string{"refused to connect to 127.0.0.1", "127.0.0.0/8 (loopback)", "the redis transport does not connect",
		"--allow-cidr 127.0.0.1/32 (this address only) or --allow-cidr 127.0.0.0/8 (the whole network)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not mention %q", err, want)
		}
	}

	c, err := sdk.NewDialer("redis", loopbackOnly(t)).DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial %s with --allow-cidr 127.0.0.1/32 = %v", ln.Addr(), err)
	}
	_ = c.Close()
}

// fakeResolver answers every lookup with the same addresses.
type fakeResolver []netip.Addr

func (r fakeResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return r, nil
}

func TestDialerChecksResolvedAddressesAndNamesTheHost(t *testing.T) {
	d := sdk.NewDialer("nats", sdk.Egress{},
		sdk.WithResolver(fakeResolver{netip.MustParseAddr("169.254.169.254")}),
		sdk.WithConnect(func(_ context.Context, _, address string) (net.Conn, error) {
			t.Errorf("connected to %s, which the policy should have refused", address)
			return nil, errors.New("must not dial")
		}))
	_, err := d.DialContext(context.Background(), "tcp", "metadata.example:4222")
	if err == nil || !strings.Contains(err.Error(), `refused to connect to 169.254.169.254 (resolved from "metadata.example")`) ||
		!strings.Contains(err.Error(), "cloud instance metadata") || !strings.Contains(err.Error(), "--allow-cidr 169.254.169.254/32") {
		t.Errorf("dial a name that resolves to the metadata address = %v", err)
	}
}

func TestDialerTreatsUnixSocketsAsLoopback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.sock")
	listen(t, "unix", path)
	_, err := sdk.NewDialer("redis", sdk.Egress{}).DialContext(context.Background(), "unix", path)
	if err == nil || !strings.Contains(err.Error(), "unix-domain socket") || !strings.Contains(err.Error(), "--allow-cidr 127.0.0.1/32") {
		t.Fatalf("dial unix socket without loopback allowed = %v, want a refusal naming --allow-cidr 127.0.0.1/32", err)
	}
	c, err := sdk.NewDialer("redis", loopbackOnly(t)).DialContext(context.Background(), "unix", path)
	if err != nil {
		t.Fatalf("dial unix socket with loopback allowed = %v", err)
	}
	_ = c.Close()
}

func TestDialerControlHookRefusesDeniedAddress(t *testing.T) {
	ln := listen(t, "tcp", "127.0.0.1:0")
	nd := &net.Dialer{Control: sdk.NewDialer("amqp", sdk.Egress{}).Control}
	_, err := nd.Dial("tcp", ln.Addr().String())
	var denied *sdk.DeniedAddressError
	if !errors.As(err, &denied) || denied.Transport != "amqp" {
		t.Fatalf("net.Dialer with the Control hook = %v, want the amqp transport's refusal", err)
	}
}

func TestEgressEnvRoundTrip(t *testing.T) {
	e, err := sdk.ParseEgressEnv(" 10.0.0.0/8, ::1/128 ,")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Environ(); got != sdk.EgressEnv+"=10.0.0.0/8,::1/128" {
		t.Errorf("Environ = %q", got)
	}
	if got := (sdk.Egress{}).Environ(); got != sdk.EgressEnv+"=" {
		t.Errorf("zero Environ = %q, want the variable set and empty", got)
	}
	if e, err := sdk.ParseEgressEnv(""); err != nil || len(e.AllowCIDRs) != 0 {
		t.Errorf("empty = %+v, %v; want nothing allowed", e, err)
	}
	if _, err := sdk.ParseEgressEnv("10.1.2.3/8"); err == nil || !strings.Contains(err.Error(), sdk.EgressEnv) || !strings.Contains(err.Error(), "10.0.0.0/8") {
		t.Errorf("malformed = %v, want an error naming the variable and the likely fix", err)
	}
	t.Setenv(sdk.EgressEnv, "192.168.1.0/24")
	if e, err := sdk.AgentEgress(); err != nil || len(e.AllowCIDRs) != 1 || e.Check(netip.MustParseAddr("192.168.1.9")) != nil {
		t.Errorf("AgentEgress = %+v, %v; want 192.168.1.0/24 allowed", e, err)
	}
}
