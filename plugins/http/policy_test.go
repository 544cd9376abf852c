package httptransport_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	httptransport "github.com/hookwire/hookwire/plugins/http"
)

// fakeResolver answers lookups from a function of the call number (1, 2, ...).
type fakeResolver struct {
	calls  atomic.Int32
	answer func(call int, host string) []netip.Addr
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	n := int(r.calls.Add(1))
	addrs := r.answer(n, host)
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

func addrs(list ...string) []netip.Addr {
	out := make([]netip.Addr, len(list))
	for i, s := range list {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// publicStandIn lets tests pretend that a public address is reachable: the
// guarded dialer's final connect to any address in public goes to the
// loopback server at local instead; everything else fails the test, since
// the policy should have refused it before connecting.
type publicStandIn struct {
	t      *testing.T
	local  string
	public map[string]bool // "ip"
	mu     sync.Mutex
	dialed []string
}

func (p *publicStandIn) connect(ctx context.Context, network, address string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		p.t.Errorf("connect to %q: %v", address, err)
		return nil, err
	}
	p.mu.Lock()
	p.dialed = append(p.dialed, address)
	p.mu.Unlock()
	if !p.public[host] {
		p.t.Errorf("the transport connected to %s, which its policy should have refused", address)
		return nil, fmt.Errorf("test: %s must not be dialled", address)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, p.local)
}

func (p *publicStandIn) dialedAddrs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.dialed...)
}

// noConnect fails the test if the transport connects anywhere.
func noConnect(t *testing.T) httptransport.Option {
	return httptransport.WithConnect(func(_ context.Context, _, address string) (net.Conn, error) {
		t.Errorf("the transport connected to %s, which its policy should have refused", address)
		return nil, errors.New("test: no connection allowed")
	})
}

func strictTransport(t *testing.T, opts ...httptransport.Option) *httptransport.Transport {
	t.Helper()
	tr := httptransport.New(append([]httptransport.Option{httptransport.WithVersion("1.2.3")}, opts...)...)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func hostURL(scheme, addr string) string {
	a := netip.MustParseAddr(addr)
	if a.Is6() {
		return scheme + "://[" + strings.ReplaceAll(addr, "%", "%25") + "]:8443/hook"
	}
	return scheme + "://" + addr + ":8443/hook"
}

func wantRejected(t *testing.T, res *transportv1.DeliveryResult, mentions ...string) {
	t.Helper()
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_REJECTED {
		t.Fatalf("result = %v %q, want REJECTED", res.GetOutcome(), res.GetError())
	}
	for _, m := range mentions {
		if !strings.Contains(res.GetError(), m) {
			t.Errorf("error %q does not mention %q", res.GetError(), m)
		}
	}
}

// TestPolicyDeniesInternalRanges delivers, with the default policy, to an
// address in every denied range, as an IP in the URL and as a host name
// that resolves to it: each is REJECTED before any connection, and the
// error names the address, the rule and the flag that would allow it.
func TestPolicyDeniesInternalRanges(t *testing.T) {
	tests := []struct {
		addr, rule, allow string
	}{
		{"127.0.0.1", "loopback", "127.0.0.0/8"},
		{"127.255.255.254", "loopback", "127.0.0.0/8"},
		{"10.1.2.3", "private (RFC 1918)", "10.0.0.0/8"},
		{"172.16.0.1", "private (RFC 1918)", "172.16.0.0/12"},
		{"172.31.255.255", "private (RFC 1918)", "172.16.0.0/12"},
		{"192.168.1.1", "private (RFC 1918)", "192.168.0.0/16"},
		{"169.254.169.254", "cloud instance metadata", "169.254.169.254/32"},
		{"169.254.1.1", "link-local", "169.254.0.0/16"},
		{"100.64.0.1", "carrier-grade NAT", "100.64.0.0/10"},
		{"100.127.255.254", "carrier-grade NAT", "100.64.0.0/10"},
		{"0.0.0.0", "unspecified", "0.0.0.0/8"},
		{"224.0.0.1", "multicast", "224.0.0.0/4"},
		{"239.255.255.250", "multicast", "224.0.0.0/4"},
		{"255.255.255.255", "broadcast", "255.255.255.255/32"},
		{"240.0.0.1", "reserved", "240.0.0.0/4"},
		{"192.0.0.170", "IETF protocol assignments", "192.0.0.0/24"},
		{"198.18.0.1", "benchmarking", "198.18.0.0/15"},
		{"::1", "loopback", "::1/128"},
		{"::", "unspecified", "::/128"},
		{"::7f00:1", "IPv4-compatible", "::/96"},
		{"fc00::1", "unique local", "fc00::/7"},
		{"fd00:ec2::254", "unique local", "fc00::/7"},
		{"fe80::1", "link-local", "fe80::/10"},
		{"fe80::1%eth0", "link-local", "fe80::/10"},
		{"fec0::1", "site-local", "fec0::/10"},
		{"ff02::1", "multicast", "ff00::/8"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo", "2001::/32"},
		{"64:ff9b:1::a00:1", "local-use IPv4/IPv6 translation", "64:ff9b:1::/48"},
		// IPv6 forms carrying a denied IPv4 address.
		{"::ffff:127.0.0.1", "loopback", "127.0.0.0/8"},
		{"::ffff:10.0.0.1", "private (RFC 1918)", "10.0.0.0/8"},
		{"::ffff:169.254.169.254", "cloud instance metadata", "169.254.169.254/32"},
		{"::ffff:100.64.0.1", "carrier-grade NAT", "100.64.0.0/10"},
		{"::ffff:0.0.0.0", "unspecified", "0.0.0.0/8"},
		{"64:ff9b::7f00:1", "loopback", "127.0.0.0/8"},
		{"64:ff9b::a9fe:a9fe", "cloud instance metadata", "169.254.169.254/32"},
		{"2002:c0a8:101::1", "private (RFC 1918)", "192.168.0.0/16"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			tr := strictTransport(t, noConnect(t))
			res := tr.Deliver(context.Background(), request(t, hostURL("https", tt.addr)))
			shown := netip.MustParseAddr(tt.addr).WithZone("").String()
			wantRejected(t, res, "refused to connect to "+shown, tt.rule, tt.allow, "--allow-cidr")

			// The same address behind a host name.
			r := &fakeResolver{answer: func(int, string) []netip.Addr { return addrs(tt.addr) }}
			tr = strictTransport(t, noConnect(t), httptransport.WithResolver(r))
			res = tr.Deliver(context.Background(), request(t, "https://hooks.example.com:8443/hook"))
			wantRejected(t, res, "refused to connect to "+shown, `"hooks.example.com"`, tt.rule)
		})
	}
}

// TestPolicyAllowsPublicAddresses: public addresses, and IPv6 forms that
// carry a public IPv4 address, pass the guard.
func TestPolicyAllowsPublicAddresses(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	local := strings.TrimPrefix(srv.URL, "http://")
	for _, addr := range []string{"93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"} {
		t.Run(addr, func(t *testing.T) {
			stand := &publicStandIn{t: t, local: local, public: map[string]bool{addr: true}}
			tr := strictTransport(t, httptransport.WithPolicy(httptransport.Policy{AllowInsecureHTTP: true}), httptransport.WithConnect(stand.connect))
			res := tr.Deliver(context.Background(), request(t, hostURL("http", addr)))
			if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
				t.Fatalf("delivery to public %s = %v %q, want SUCCESS", addr, res.GetOutcome(), res.GetError())
			}
		})
	}
}

// TestPolicyAllowCIDRs: an allowlisted network overrides the deny list for
// exactly that network, in its IPv4-mapped form too.
func TestPolicyAllowCIDRs(t *testing.T) {
	hits := atomic.Int32{}
	srv := server(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	local := strings.TrimPrefix(srv.URL, "http://")
	allow, err := httptransport.ParseCIDRs([]string{"10.20.0.0/16", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	pol := httptransport.Policy{AllowInsecureHTTP: true, AllowCIDRs: allow}

	// A real loopback server, dialled for real (Control hook included).
	tr := strictTransport(t, httptransport.WithPolicy(pol))
	if res := tr.Deliver(context.Background(), request(t, srv.URL)); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		t.Fatalf("delivery to allowlisted 127.0.0.1 = %v %q", res.GetOutcome(), res.GetError())
	}
	if hits.Load() != 1 {
		t.Fatalf("server got %d requests, want 1", hits.Load())
	}

	stand := &publicStandIn{t: t, local: local, public: map[string]bool{"10.20.30.40": true, "::ffff:10.20.0.1": true}}
	tr = strictTransport(t, httptransport.WithPolicy(pol), httptransport.WithConnect(stand.connect))
	for _, addr := range []string{"10.20.30.40", "::ffff:10.20.0.1"} {
		if res := tr.Deliver(context.Background(), request(t, hostURL("http", addr))); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
			t.Errorf("delivery to allowlisted %s = %v %q", addr, res.GetOutcome(), res.GetError())
		}
	}
	// The rest of the private space and the other loopback addresses stay denied.
	for _, addr := range []string{"10.21.0.1", "192.168.0.1", "127.0.0.2", "169.254.169.254"} {
		wantRejected(t, tr.Deliver(context.Background(), request(t, hostURL("http", addr))), addr)
	}
}

// TestDNSRebinding: the resolver answers a public address first and a
// loopback address afterwards. The first delivery reaches the public
// stand-in; the second must be refused at dial time, and the internal
// loopback service must never see a request.
func TestDNSRebinding(t *testing.T) {
	var internalHits atomic.Int32
	internal := server(t, func(w http.ResponseWriter, r *http.Request) { internalHits.Add(1) })
	public := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(internal.URL, "http://"))

	r := &fakeResolver{answer: func(call int, _ string) []netip.Addr {
		if call == 1 {
			return addrs("93.184.216.34")
		}
		return addrs("127.0.0.1")
	}}
	stand := &publicStandIn{t: t, local: strings.TrimPrefix(public.URL, "http://"), public: map[string]bool{"93.184.216.34": true}}
	tr := strictTransport(t, httptransport.WithPolicy(httptransport.Policy{AllowInsecureHTTP: true}),
		httptransport.WithResolver(r), httptransport.WithConnect(stand.connect))
	url := "http://rebind.example.com:" + port + "/hook"

	if res := tr.Deliver(context.Background(), request(t, url)); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		t.Fatalf("first delivery (public answer) = %v %q, want SUCCESS", res.GetOutcome(), res.GetError())
	}
	tr.CloseIdleConnections() // the next delivery must dial (and resolve) again
	res := tr.Deliver(context.Background(), request(t, url))
	wantRejected(t, res, "127.0.0.1", `"rebind.example.com"`, "loopback")
	if n := internalHits.Load(); n != 0 {
		t.Errorf("the internal loopback service got %d requests", n)
	}
	if got := r.calls.Load(); got != 2 {
		t.Errorf("resolver asked %d times for two dials, want 2 (one lookup per dial, no separate check)", got)
	}
	if d := stand.dialedAddrs(); len(d) != 1 || d[0] != "93.184.216.34:"+port {
		t.Errorf("dialled %v, want only the public address", d)
	}

	// One answer mixing internal and public addresses: only the public one
	// is dialled.
	mixed := &fakeResolver{answer: func(int, string) []netip.Addr { return addrs("127.0.0.1", "10.0.0.1", "93.184.216.34") }}
	stand = &publicStandIn{t: t, local: strings.TrimPrefix(public.URL, "http://"), public: map[string]bool{"93.184.216.34": true}}
	tr = strictTransport(t, httptransport.WithPolicy(httptransport.Policy{AllowInsecureHTTP: true}),
		httptransport.WithResolver(mixed), httptransport.WithConnect(stand.connect))
	if res := tr.Deliver(context.Background(), request(t, url)); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		t.Fatalf("delivery with a mixed answer = %v %q, want SUCCESS via the public address", res.GetOutcome(), res.GetError())
	}
	if internalHits.Load() != 0 {
		t.Error("the internal loopback service was reached through a mixed answer")
	}
}

// TestControlHookRefusesDeniedAddress checks the last line of defence on
// its own: the socket Control hook refuses a denied address even when
// nothing checked it before the dial.
func TestControlHookRefusesDeniedAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	_, err = httptransport.NetDialer(httptransport.Policy{}).DialContext(context.Background(), "tcp", ln.Addr().String())
	var denied *httptransport.DeniedAddressError
	if !errors.As(err, &denied) || denied.Rule != "loopback" {
		t.Fatalf("dial 127.0.0.1 through the Control hook = %v, want a *DeniedAddressError for loopback", err)
	}

	allowed := httptransport.Policy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	conn, err := httptransport.NetDialer(allowed).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial allowlisted 127.0.0.1 through the Control hook: %v", err)
	}
	conn.Close()
}

// TestHTTPSOnlyByDefault: plain http is refused without a connection
// unless the policy allows it; https goes ahead.
func TestHTTPSOnlyByDefault(t *testing.T) {
	tr := strictTransport(t, noConnect(t))
	res := tr.Deliver(context.Background(), request(t, "http://93.184.216.34/hook"))
	wantRejected(t, res, "plain http", "https://", "--allow-insecure-http")
	res = tr.Deliver(context.Background(), request(t, "HTTP://93.184.216.34/hook"))
	wantRejected(t, res, "plain http")

	// https is attempted (the stand-in refuses the connection).
	var dialed atomic.Int32
	tr = strictTransport(t, httptransport.WithConnect(func(context.Context, string, string) (net.Conn, error) {
		dialed.Add(1)
		return nil, errors.New("test: connection refused")
	}))
	res = tr.Deliver(context.Background(), request(t, "https://93.184.216.34/hook"))
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_CONNECTION_ERROR || dialed.Load() != 1 {
		t.Errorf("https delivery = %v %q after %d dials, want CONNECTION_ERROR after one", res.GetOutcome(), res.GetError(), dialed.Load())
	}

	// Allowed, plain http goes ahead too.
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {})
	stand := &publicStandIn{t: t, local: strings.TrimPrefix(srv.URL, "http://"), public: map[string]bool{"93.184.216.34": true}}
	tr = strictTransport(t, httptransport.WithPolicy(httptransport.Policy{AllowInsecureHTTP: true}), httptransport.WithConnect(stand.connect))
	if res := tr.Deliver(context.Background(), request(t, "http://93.184.216.34/hook")); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		t.Errorf("allowed plain http = %v %q", res.GetOutcome(), res.GetError())
	}

	// Validate does not apply the policy: the control plane cannot know it.
	problems, err := tr.Validate(context.Background(), config(t, map[string]any{"url": "http://127.0.0.1/x"}))
	if err != nil || len(problems) != 0 {
		t.Errorf("validate http://127.0.0.1 = %q, %v, want valid", problems, err)
	}
}

// TestDevPolicy allows loopback over plain http and nothing more.
func TestDevPolicy(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {})
	tr := strictTransport(t, httptransport.WithPolicy(httptransport.DevPolicy()))
	if res := tr.Deliver(context.Background(), request(t, srv.URL)); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		t.Errorf("dev delivery to %s = %v %q", srv.URL, res.GetOutcome(), res.GetError())
	}
	tr = strictTransport(t, httptransport.WithPolicy(httptransport.DevPolicy()), noConnect(t))
	wantRejected(t, tr.Deliver(context.Background(), request(t, "http://10.0.0.1/")), "10.0.0.1", "private")
	wantRejected(t, tr.Deliver(context.Background(), request(t, "http://169.254.169.254/latest/meta-data/")), "169.254.169.254", "metadata")
}

func TestParseCIDRs(t *testing.T) {
	got, err := httptransport.ParseCIDRs([]string{"10.0.0.0/8", " fd00::/8 ", "192.168.1.7", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "fd00::/8", "192.168.1.7/32", "::1/128"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ParseCIDRs = %v, want %v", got, want)
	}
	for in, mention := range map[string]string{
		"10.1.2.3/8":  "did you mean 10.0.0.0/8",
		"10.0.0.0/33": "not a CIDR network",
		"intranet":    "not a CIDR network or IP address",
		"fe80::1%eth": "zone",
		"":            "not a CIDR network or IP address",
	} {
		if _, err := httptransport.ParseCIDRs([]string{in}); err == nil || !strings.Contains(err.Error(), mention) {
			t.Errorf("ParseCIDRs(%q) = %v, want an error mentioning %q", in, err, mention)
		}
	}
}

func TestDeniedRangesDocumented(t *testing.T) {
	for _, must := range []string{"127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "0.0.0.0/8", "224.0.0.0/4", "::1/128", "::/128", "fc00::/7", "fe80::/10", "ff00::/8"} {
		found := false
		for _, r := range httptransport.DeniedRanges() {
			if r.Prefix.String() == must && r.Rule != "" {
				found = true
			}
		}
		if !found {
			t.Errorf("DeniedRanges() lacks %s", must)
		}
	}
}
