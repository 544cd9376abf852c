package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// Real-process tests of a three-server cluster on loopback (issue 13).
// Each server binds its cluster port on its own loopback address
// (127.0.0.2, .3, .4) and advertises a TCP proxy on 127.0.0.1 in front of
// it; servers dial each other from their own address. So every cluster
// connection to a server goes through its proxy, and every proxy can tell
// which server a connection comes from: cutting one server off is closing
// its proxy and refusing its address at the others.

// tcpProxy forwards connections to upstream until cut.
type tcpProxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	down     bool
	blocked  map[string]bool // source IPs refused
	conns    map[net.Conn]string
}

func newTCPProxy(t *testing.T, upstream string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, upstream: upstream, blocked: map[string]bool{}, conns: map[net.Conn]string{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.closeWhere(func(string) bool { return true }) })
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		src, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		p.mu.Lock()
		refused := p.down || p.blocked[src]
		p.mu.Unlock()
		if refused {
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.upstream, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = src, src
		p.mu.Unlock()
		pipe := func(dst, from net.Conn) {
			_, _ = io.Copy(dst, from)
			dst.Close()
			from.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, from)
			p.mu.Unlock()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

func (p *tcpProxy) closeWhere(match func(src string) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c, src := range p.conns {
		if match(src) {
			c.Close()
		}
	}
}

// cutOff refuses every connection from src, and closes those open.
func (p *tcpProxy) cutOff(src string, on bool) {
	p.mu.Lock()
	p.blocked[src] = on
	p.mu.Unlock()
	if on {
		p.closeWhere(func(s string) bool { return s == src })
	}
}

// setDown refuses every connection (and closes those open) while on.
func (p *tcpProxy) setDown(on bool) {
	p.mu.Lock()
	p.down = on
	p.mu.Unlock()
	if on {
		p.closeWhere(func(string) bool { return true })
	}
}

type clusterNode struct {
	id, dir, ip        string
	grpcAddr, httpAddr string
	bind               string // cluster listener, on ip
	proxy              *tcpProxy
	srv                *server
	extra              []string
}

type testCluster struct {
	t     *testing.T
	nodes []*clusterNode
	conns map[string]*grpc.ClientConn
	mu    sync.Mutex
}

// freeAddrOn returns host:port with a port free on ip just now.
func freeAddrOn(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("cannot listen on %s (loopback addresses beyond 127.0.0.1 are needed): %v", ip, err)
	}
	defer l.Close()
	return l.Addr().String()
}

func newTestCluster(t *testing.T, n int, extra ...string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, conns: map[string]*grpc.ClientConn{}}
	for i := range n {
		ip := fmt.Sprintf("127.0.0.%d", i+2)
		bind := freeAddrOn(t, ip)
		node := &clusterNode{id: fmt.Sprintf("n%d", i+1), dir: t.TempDir(), ip: ip, bind: bind,
			grpcAddr: freeAddr(t), httpAddr: freeAddr(t), proxy: newTCPProxy(t, bind), extra: extra}
		c.nodes = append(c.nodes, node)
	}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, conn := range c.conns {
			conn.Close()
		}
	})
	return c
}

// start starts node i (first start or restart: the same flags).
func (c *testCluster) start(i int) {
	c.t.Helper()
	n := c.nodes[i]
	args := []string{"server", "--node-id", n.id, "--data-dir", n.dir, "--grpc-addr", n.grpcAddr, "--http-addr", n.httpAddr,
		"--cluster-addr", n.bind, "--cluster-advertise", n.proxy.addr(), "--bootstrap-expect", strconv.Itoa(len(c.nodes))}
	for j, o := range c.nodes {
		if j != i {
			args = append(args, "--join", o.proxy.addr())
		}
	}
	args = append(args, n.extra...)
	p, out := startProc(c.t, []string{"HOOKWIRE_ADMIN_KEY=" + e2eAdminKey, "HOOKWIRE_MASTER_KEY=" + e2eMasterKey}, args...)
	for out.Scan() {
		if m := addrLine.FindStringSubmatch(out.Text()); m != nil {
			go func() {
				for out.Scan() {
				}
			}()
			n.srv = &server{proc: p, grpcAddr: m[1], httpAddr: m[2]}
			return
		}
	}
	c.t.Fatalf("server %s exited before printing its addresses: %s", n.id, p.stderr.String())
}

func (c *testCluster) startAll() {
	c.t.Helper()
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); c.start(i) }()
	}
	wg.Wait()
}

func (c *testCluster) conn(addr string) *grpc.ClientConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if conn := c.conns[addr]; conn != nil {
		return conn
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatal(err)
	}
	c.conns[addr] = conn
	return conn
}

// status asks node i for its view of the cluster.
func (c *testCluster) status(i int) (*hookwirev1.ClusterStatus, error) {
	ctx, cancel := context.WithTimeout(authedCtx(context.Background()), time.Second)
	defer cancel()
	return hookwirev1.NewClusterServiceClient(c.conn(c.nodes[i].grpcAddr)).GetClusterStatus(ctx, &hookwirev1.GetClusterStatusRequest{})
}

// leader waits until one of the nodes in among reports that it leads,
// and the others in among agree, and returns its index.
func (c *testCluster) leader(within time.Duration, among ...int) int {
	c.t.Helper()
	if len(among) == 0 {
		for i := range c.nodes {
			among = append(among, i)
		}
	}
	deadline := time.Now().Add(within)
	for {
		lead, agree := -1, 0
		leaders := map[string]int{}
		for _, i := range among {
			st, err := c.status(i)
			if err != nil {
				continue
			}
			if st.GetState() == "Leader" {
				lead = i
			}
			leaders[st.GetLeaderId()]++
		}
		if lead >= 0 {
			agree = leaders[c.nodes[lead].id]
		}
		if lead >= 0 && agree == len(among) {
			return lead
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no leader agreed on by nodes %v within %v", among, within)
		}
		time.Sleep(50 * time.Millisecond) // polling the servers' state
	}
}

func (c *testCluster) grpcAddrs() string {
	var addrs []string
	for _, n := range c.nodes {
		addrs = append(addrs, n.grpcAddr)
	}
	return strings.Join(addrs, ",")
}

// drainHits keeps the sink's notification channel from filling up.
func drainHits(t *testing.T, sk *sink) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for {
			select {
			case <-sk.hits:
			case <-ctx.Done():
				return
			}
		}
	}()
}

// publisher publishes events numbered from 0 to the cluster's servers in
// turn, each retried (on the next server) until acknowledged, with its
// number as idempotency key, as a careful producer would.
type publisher struct {
	mu    sync.Mutex
	acked map[int]bool
	// acks holds when each acknowledged publish was sent and answered.
	acks []ackTimes
	stop context.CancelFunc
	done chan struct{}
}

type ackTimes struct{ sent, acked time.Time }

// firstAckSentAfter is when the first publish sent after t was
// acknowledged (ok false: none yet).
func (p *publisher) firstAckSentAfter(t time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.acks { // one publisher: in the order sent
		if a.sent.After(t) {
			return a.acked, true
		}
	}
	return time.Time{}, false
}

func (c *testCluster) publish(tenant string, max int) *publisher {
	ctx, cancel := context.WithCancel(context.Background())
	p := &publisher{acked: map[int]bool{}, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		try := 0
		for seq := 0; seq < max && ctx.Err() == nil; try++ {
			n := c.nodes[try%len(c.nodes)]
			sent := time.Now()
			cctx, ccancel := context.WithTimeout(authedCtx(ctx), 2*time.Second)
			_, err := hookwirev1.NewEventServiceClient(c.conn(n.grpcAddr)).PublishEvent(cctx, &hookwirev1.PublishEventRequest{Tenant: tenant, Event: &hookwirev1.Event{
				Type: "order.created", IdempotencyKey: strconv.Itoa(seq), Payload: []byte(`{"seq":` + strconv.Itoa(seq) + `}`)}})
			ccancel()
			if err == nil {
				p.mu.Lock()
				p.acked[seq] = true
				p.acks = append(p.acks, ackTimes{sent, time.Now()})
				p.mu.Unlock()
				seq++
			}
		}
	}()
	return p
}

func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

func (p *publisher) finish() map[int]bool {
	p.stop()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}

// waitAcked waits until the publisher has n more acknowledgements.
func (p *publisher) waitMore(t *testing.T, n int, within time.Duration) time.Duration {
	t.Helper()
	started := time.Now()
	target := p.count() + n
	for p.count() < target {
		if time.Since(started) > within {
			t.Fatalf("publishing stalled at %d acknowledged events", p.count())
		}
		time.Sleep(10 * time.Millisecond) // watching a counter driven by another goroutine
	}
	return time.Since(started)
}

// checkDelivered waits until every acknowledged event reached the sink on
// path, and checks that duplicates kept their webhook-id.
func checkDelivered(t *testing.T, sk *sink, acked map[int]bool, path string, within time.Duration, explain func(seq int) string) (dups int) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		seen := map[int]bool{}
		for _, rs := range sk.all() {
			for _, r := range rs {
				var p struct{ Seq int }
				if r.path == path && json.Unmarshal(r.body, &p) == nil {
					seen[p.Seq] = true
				}
			}
		}
		var missing []int
		for seq := range acked {
			if !seen[seq] {
				missing = append(missing, seq)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			if explain != nil {
				for _, seq := range missing[:min(5, len(missing))] {
					t.Logf("event %d: %s", seq, explain(seq))
				}
			}
			t.Fatalf("%d of %d acknowledged events never arrived, e.g. %v", len(missing), len(acked), missing[:min(5, len(missing))])
		}
		time.Sleep(100 * time.Millisecond) // polling the sink
	}
	ids := map[string]string{}
	for id, rs := range sk.all() {
		dups += len(rs) - 1
		for _, r := range rs {
			key := r.path + " " + string(r.body)
			if prev, ok := ids[key]; ok && prev != id {
				t.Fatalf("the same delivery %s arrived with webhook-ids %s and %s", key, prev, id)
			}
			ids[key] = id
		}
	}
	return dups
}

// TestClusterSurvivesLeaderKillsAndPartition: three servers, an agent that
// knows all three, events published through every server in turn. The
// leader is SIGKILLed three times (and restarted), a follower once; then
// the leader is cut off from the others by its proxies: it must stop
// acknowledging and step down while the majority elects a new leader and
// goes on. Every acknowledged event is delivered, duplicates carry the
// same webhook-id, and the failover times are logged.
func TestClusterSurvivesLeaderKillsAndPartition(t *testing.T) {
	sk := newSink(t)
	drainHits(t, sk)
	c := newTestCluster(t, 3)
	c.startAll()
	c.leader(20 * time.Second)
	startAgent(t, c.grpcAddrs(), "cluster-agent")
	_, secret := createSubscription(t, c.nodes[1].httpAddr, "acme", sk.url+"/a") // through any server

	pub := c.publish("acme", 100000)
	pub.waitMore(t, 50, 30*time.Second)
	var failovers []time.Duration
	for round := range 3 {
		lead := c.leader(20 * time.Second)
		killed := time.Now()
		c.nodes[lead].srv.kill(syscall.SIGKILL)
		// Failover: from the kill to the acknowledgement of the first
		// publish sent after it.
		for {
			at, ok := pub.firstAckSentAfter(killed)
			if ok {
				failovers = append(failovers, at.Sub(killed).Round(time.Millisecond))
				break
			}
			if time.Since(killed) > 30*time.Second {
				t.Fatalf("round %d: no publish acknowledged within 30s of killing leader %s", round, c.nodes[lead].id)
			}
			time.Sleep(5 * time.Millisecond) // watching the publisher
		}
		pub.waitMore(t, 30, 30*time.Second)
		c.start(lead)
		pub.waitMore(t, 30, 30*time.Second)
	}
	lead := c.leader(20 * time.Second)
	follower := (lead + 1) % 3
	c.nodes[follower].srv.kill(syscall.SIGKILL)
	pub.waitMore(t, 50, 30*time.Second)
	c.start(follower)
	pub.waitMore(t, 30, 30*time.Second)

	// Cut the leader off: nothing from it reaches the others, nothing
	// reaches it.
	lead = c.leader(20 * time.Second)
	old := c.nodes[lead]
	cut := time.Now()
	old.proxy.setDown(true)
	for _, n := range c.nodes {
		if n != old {
			n.proxy.cutOff(old.ip, true)
		}
	}
	var rest []int
	for i := range c.nodes {
		if i != lead {
			rest = append(rest, i)
		}
	}
	newLead := c.leader(20*time.Second, rest...)
	// The old leader steps down (its lease ran out) and acknowledges
	// nothing while cut off.
	for {
		st, err := c.status(lead)
		if err == nil && st.GetState() != "Leader" {
			break
		}
		if time.Since(cut) > 10*time.Second {
			t.Fatalf("the cut-off leader %s still says it leads after 10s (%v, %v)", old.id, st.GetState(), err)
		}
		time.Sleep(20 * time.Millisecond) // polling its state
	}
	stepDown := time.Since(cut)
	ctx, cancel := context.WithTimeout(authedCtx(context.Background()), 3*time.Second)
	_, err := hookwirev1.NewEventServiceClient(c.conn(old.grpcAddr)).PublishEvent(ctx, &hookwirev1.PublishEventRequest{Tenant: "acme",
		Event: &hookwirev1.Event{Type: "order.created", Payload: []byte(`{"seq":-1}`)}})
	cancel()
	if err == nil {
		t.Fatal("the cut-off former leader acknowledged a publish")
	}
	pub.waitMore(t, 30, 30*time.Second) // the majority goes on
	old.proxy.setDown(false)
	for _, n := range c.nodes {
		n.proxy.cutOff(old.ip, false)
	}
	if l := c.leader(20 * time.Second); l != newLead && c.nodes[l] == old {
		t.Logf("the healed server %s leads again", old.id)
	}
	pub.waitMore(t, 30, 30*time.Second)

	acked := pub.finish()
	defer func() {
		if t.Failed() {
			_, body := restRaw(t, c.nodes[0].httpAddr, "GET", "/v1/tenants/acme/deliveries?status=DELIVERY_STATUS_PENDING&page_size=20", "")
			t.Logf("pending deliveries: %s", body)
			for _, n := range c.nodes {
				t.Logf("server %s log tail:\n%s", n.id, tail(n.srv.stderr.String(), 60))
			}
		}
	}()
	dups := checkDelivered(t, sk, acked, "/hook/a", 120*time.Second, func(seq int) string {
		_, list := restRaw(t, c.nodes[0].httpAddr, "GET", "/v1/tenants/acme/events?idempotency_key="+strconv.Itoa(seq), "")
		var l struct {
			Events []struct{ ID string } `json:"events"`
		}
		_ = json.Unmarshal([]byte(list), &l)
		if len(l.Events) == 0 {
			return "not stored: " + list
		}
		_, ev := restRaw(t, c.nodes[0].httpAddr, "GET", "/v1/tenants/acme/events/"+l.Events[0].ID, "")
		return ev
	})
	for _, rs := range sk.all() {
		verify(t, secret, rs[0])
		break
	}
	t.Logf("%d events acknowledged through 3 leader kills, 1 follower kill and a partition; %d duplicates (same webhook-id), 0 lost; failover (kill to next acknowledged publish) %v; cut-off leader stepped down after %v (publish to it refused: %v)",
		len(acked), dups, failovers, stepDown.Round(time.Millisecond), err)
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	return strings.Join(parts[max(0, len(parts)-lines):], "\n")
}

// staleGetEvent reads an event from node i's own copy of the store
// (hookwire-stale-ok: the call is not forwarded to the leader).
func (c *testCluster) staleGetEvent(i int, tenant, id string) error {
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(authedCtx(context.Background()), "hookwire-stale-ok", "true"), 3*time.Second)
	defer cancel()
	_, err := hookwirev1.NewEventServiceClient(c.conn(c.nodes[i].grpcAddr)).GetEvent(ctx, &hookwirev1.GetEventRequest{Tenant: tenant, Id: id})
	return err
}

// TestClusterCatchUpBySnapshotAndFullRestart: a follower is down while
// 100,000 events are written; the log is truncated behind it, so when it
// comes back it catches up from a snapshot and holds every event. Then
// all three servers are stopped and started: the state is intact and
// deliveries flow, signed with the subscription's secret.
func TestClusterCatchUpBySnapshotAndFullRestart(t *testing.T) {
	const total, batch = 100000, 250
	sk := newSink(t)
	drainHits(t, sk)
	// 1 MiB log segments: the leader drops what the follower needs (a
	// raft-wal log is truncated a segment file at a time).
	c := newTestCluster(t, 3, "--raft-snapshot-threshold", "128", "--raft-trailing-logs", "32", "--raft-snapshot-interval", "100ms", "--raft-log-segment-mib", "1")
	c.startAll()
	lead := c.leader(20 * time.Second)
	_, secret := createSubscription(t, c.nodes[lead].httpAddr, "acme", sk.url+"/a")
	down := (lead + 1) % 3
	c.nodes[down].srv.kill(syscall.SIGKILL)

	started := time.Now()
	var first, last string
	for sent := 0; sent < total; {
		events := make([]*hookwirev1.Event, batch)
		for i := range events {
			events[i] = &hookwirev1.Event{Type: "noise.tick", Payload: []byte(`{"n":` + strconv.Itoa(sent+i) + `}`)}
		}
		n := c.nodes[(sent/batch)%3]
		if n == c.nodes[down] {
			n = c.nodes[lead]
		}
		ctx, cancel := context.WithTimeout(authedCtx(context.Background()), 10*time.Second)
		resp, err := hookwirev1.NewEventServiceClient(c.conn(n.grpcAddr)).PublishEvents(ctx, &hookwirev1.PublishEventsRequest{Tenant: "acme", Events: events})
		cancel()
		if err != nil {
			t.Fatalf("publish events %d..%d through %s: %v", sent, sent+batch, n.id, err)
		}
		if first == "" {
			first = resp.GetResults()[0].GetId()
		}
		last = resp.GetResults()[batch-1].GetId()
		sent += batch
	}
	wrote := time.Since(started)
	leaderStatus, err := c.status(lead)
	if err != nil {
		t.Fatal(err)
	}

	c.start(down)
	for deadline := time.Now().Add(60 * time.Second); ; {
		st, err := c.status(down)
		if err == nil && st.GetAppliedIndex() >= leaderStatus.GetCommitIndex() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not catch up to index %d within 60s: %v %v", c.nodes[down].id, leaderStatus.GetCommitIndex(), st, err)
		}
		time.Sleep(50 * time.Millisecond) // polling its progress
	}
	// Raft reports the snapshot's index as applied as soon as the store has
	// restored it, and logs the install only after compacting its log: a
	// moment later. Poll for the line.
	for deadline := time.Now().Add(10 * time.Second); ; {
		log := c.nodes[down].srv.stderr.String()
		if strings.Contains(log, "Installed remote snapshot") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s caught up without installing a snapshot (leader's last snapshot at %d):\n%s", c.nodes[down].id, leaderStatus.GetLastSnapshotIndex(), tail(log, 40))
		}
		time.Sleep(20 * time.Millisecond) // polling its log
	}
	// Raft counts an entry applied once handed to the store, which applies
	// it a moment later: poll.
	for _, id := range []string{first, last} {
		for deadline := time.Now().Add(10 * time.Second); ; {
			err := c.staleGetEvent(down, "acme", id)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %s on the server that caught up: %v", id, err)
			}
			time.Sleep(20 * time.Millisecond) // polling the follower's copy
		}
	}

	// Stop every server, start them again.
	for _, n := range c.nodes {
		n.srv.kill(syscall.SIGTERM)
	}
	c.startAll()
	c.leader(20 * time.Second)
	for i := range c.nodes {
		for _, id := range []string{first, last} {
			if err := c.staleGetEvent(i, "acme", id); err != nil {
				t.Fatalf("after a full restart, event %s on %s: %v", id, c.nodes[i].id, err)
			}
		}
	}
	startAgent(t, c.grpcAddrs(), "restart-agent")
	pub := c.publish("acme", 20)
	<-pub.done
	acked := pub.finish()
	checkDelivered(t, sk, acked, "/hook/a", 60*time.Second, nil)
	for _, rs := range sk.all() {
		verify(t, secret, rs[0])
	}
	t.Logf("%d events written in %v (%.0f/s) while %s was down; it caught up from a snapshot (leader's snapshot index %d, commit %d); after a full restart every server has them and %d new events were delivered",
		total, wrote.Round(time.Millisecond), float64(total)/wrote.Seconds(), c.nodes[down].id, leaderStatus.GetLastSnapshotIndex(), leaderStatus.GetCommitIndex(), len(acked))
}

// TestClusterSnapshotSaveAndRestoreIntoAFreshCluster: a snapshot saved with
// the CLI from a live cluster (with pending deliveries: no agent yet) and
// restored into a new, empty cluster brings the same subscriptions; the
// pending deliveries go out there, signed with the secrets the first
// cluster issued.
func TestClusterSnapshotSaveAndRestoreIntoAFreshCluster(t *testing.T) {
	sk := newSink(t)
	drainHits(t, sk)
	a := newTestCluster(t, 3)
	a.startAll()
	a.leader(20 * time.Second)
	subID, secret := createSubscription(t, a.nodes[0].httpAddr, "acme", sk.url+"/a")
	pub := a.publish("acme", 30)
	<-pub.done
	acked := pub.finish()

	cli := func(c *testCluster, args ...string) string {
		t.Helper()
		code, out, errOut := runBinary(t, append(args, "--addr", c.grpcAddrs(), "--api-key", e2eAdminKey)...)
		if code != 0 {
			t.Fatalf("hookwire %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	if out := cli(a, "operator", "raft", "list-peers"); strings.Count(out, "leader") != 1 || strings.Count(out, "follower") != 2 {
		t.Fatalf("list-peers shows no single leader and two followers:\n%s", out)
	}
	if out := cli(a, "operator", "leader"); !strings.Contains(out, " at ") {
		t.Fatalf("operator leader: %s", out)
	}
	file := t.TempDir() + "/backup.snap"
	t.Log(strings.TrimSpace(cli(a, "operator", "snapshot", "save", file)))

	b := newTestCluster(t, 3)
	b.startAll()
	b.leader(20 * time.Second)
	t.Log(strings.TrimSpace(cli(b, "operator", "snapshot", "restore", file)))
	var got struct {
		ID        string   `json:"id"`
		EventType []string `json:"event_types"`
	}
	for i := range b.nodes { // every server answers, with the restored state
		if code := restCall(t, b.nodes[i].httpAddr, "GET", "/v1/tenants/acme/subscriptions/"+subID, "", &got); code != 200 || got.ID != subID {
			t.Fatalf("subscription %s on the restored cluster's %s: HTTP %d %+v", subID, b.nodes[i].id, code, got)
		}
	}
	startAgent(t, b.grpcAddrs(), "restored-agent")
	checkDelivered(t, sk, acked, "/hook/a", 60*time.Second, nil)
	for _, rs := range sk.all() {
		verify(t, secret, rs[0])
	}
	t.Logf("%d deliveries pending in the saved cluster went out from the restored one, signed with the original secret", len(acked))
}

// TestClusterMasterKeyRotation: every server holds the same master keys.
// A rotation is a SIGHUP on each server after the new key file is in place
// and the old one moved to the previous-key file; the leader re-seals the
// stored secrets. Once it reports done, the previous key file goes away and
// servers restarted or reloaded with only the new key lead and deliver,
// signed with the unchanged subscription secret.
func TestClusterMasterKeyRotation(t *testing.T) {
	sk := newSink(t)
	drainHits(t, sk)
	keys := t.TempDir()
	current, previous := filepath.Join(keys, "master.key"), filepath.Join(keys, "previous.key")
	if code, out, errOut := runBinary(t, "keygen", "--out", current); code != 0 {
		t.Fatalf("keygen: %d %s%s", code, out, errOut)
	}
	c := newTestCluster(t, 3, "--master-key-file", current, "--previous-master-key-file", previous)
	admin := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		admin[i] = freeAddr(t)
		n.extra = append(slices.Clone(n.extra), "--admin-addr", admin[i])
	}
	c.startAll()
	c.leader(20 * time.Second)
	_, secret := createSubscription(t, c.nodes[0].httpAddr, "acme", sk.url+"/a")
	startAgent(t, c.grpcAddrs(), "rotation-agent")
	keyStatus := func(i int) (st struct {
		CurrentID string `json:"current_id"`
		Done      bool   `json:"done"`
	}) {
		code, body := httpGet(t, "http://"+admin[i]+"/healthz/master-key")
		if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
			t.Fatalf("master key status of %s: %d %s", c.nodes[i].id, code, body)
		}
		return st
	}
	oldID := keyStatus(0).CurrentID

	// Rotate: the old key becomes the previous key, a new one current.
	if err := os.Rename(current, previous); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runBinary(t, "keygen", "--out", current); code != 0 {
		t.Fatalf("keygen: %d %s%s", code, out, errOut)
	}
	for _, n := range c.nodes {
		_ = n.srv.cmd.Process.Signal(syscall.SIGHUP)
	}
	lead := c.leader(20 * time.Second)
	for deadline := time.Now().Add(30 * time.Second); ; {
		st := keyStatus(lead)
		if st.Done && st.CurrentID != oldID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader did not finish re-sealing under the new key: %+v", st)
		}
		time.Sleep(50 * time.Millisecond) // polling the leader's status
	}
	for i := range c.nodes {
		if st := keyStatus(i); st.CurrentID == oldID {
			t.Fatalf("%s still seals under the old key after SIGHUP", c.nodes[i].id)
		}
	}

	// The old key is gone: reload the followers, restart the leader.
	if err := os.Remove(previous); err != nil {
		t.Fatal(err)
	}
	for i, n := range c.nodes {
		if i != lead {
			_ = n.srv.cmd.Process.Signal(syscall.SIGHUP)
		}
	}
	c.nodes[lead].srv.kill(syscall.SIGKILL)
	c.start(lead)
	newLead := c.leader(20 * time.Second)
	c.nodes[newLead].srv.kill(syscall.SIGKILL) // whoever leads next has only the new key too
	c.start(newLead)
	c.leader(20 * time.Second)
	pub := c.publish("acme", 10)
	<-pub.done
	acked := pub.finish()
	checkDelivered(t, sk, acked, "/hook/a", 60*time.Second, nil)
	for _, rs := range sk.all() {
		verify(t, secret, rs[0])
	}
	t.Logf("rotated from master key %s under 3 servers by SIGHUP; with only the new key, two leader changes later, %d events were delivered and verified", oldID, len(acked))
}
