package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/hookwire/hookwire/internal/tmpfs/tmpfstest"
)

// TestFullDiskCausesNoRedeliveryStorm is issue 11 item 2 with real
// processes: the server's data directory is on a 40 MB tmpfs that fills up
// while the agent has deliveries in flight to a slow receiver; the disk
// stays full for a while, then space comes back. The results the agent
// reports meanwhile cannot be recorded. Before the fix the control plane
// ended the agent's stream and put those deliveries back each time, and
// the agent reconnected within milliseconds: the same webhooks went out
// again and again. Now every delivery reaches the receiver once or, at
// most, a small bounded number of times, the agent keeps one stream, and
// everything is recorded once space is back.
func TestFullDiskCausesNoRedeliveryStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes, about 30 s")
	}
	const (
		tenant   = "diskfull"
		fullFor  = 10 * time.Second
		maxExtra = 2 // receipts of one webhook-id allowed
	)
	disk := tmpfstest.Mount(t, 40<<20)
	rcv := newCountingReceiver(t, 300*time.Millisecond)
	srv := startServer(t, filepath.Join(disk, "data"))
	metricsAddr := freeAddr(t)
	startAgent(t, srv.grpcAddr, "diskfull-agent", "--metrics-addr", metricsAddr)
	if code := restCall(t, srv.httpAddr, "POST", "/v1/tenants", `{"id":"`+tenant+`"}`, nil); code != 200 {
		t.Fatalf("create tenant: HTTP %d", code)
	}
	if code := restCall(t, srv.httpAddr, "POST", "/v1/tenants/"+tenant+"/subscriptions",
		`{"event_types":["order.*"],"target":{"transport":"http","config":{"url":"`+rcv.url+`"}}}`, nil); code != 200 {
		t.Fatalf("create subscription: HTTP %d", code)
	}

	// Leave 2 MB, then publish 2 KB events until the store refuses.
	filler := tmpfstest.Fill(t, disk, 2<<20)
	events, _ := grpcClient(t, srv.grpcAddr)
	pad := strings.Repeat("x", 2048)
	published := 0
	var refusal error
	for i := 0; i < 5000; i++ {
		ctx, cancel := context.WithTimeout(authedCtx(context.Background()), 10*time.Second)
		_, err := events.PublishEvent(ctx, &hookwirev1.PublishEventRequest{Tenant: tenant, Event: &hookwirev1.Event{
			Type: "order.created", Payload: []byte(`{"seq":` + strconv.Itoa(i) + `,"pad":"` + pad + `"}`)}})
		cancel()
		if err != nil {
			refusal = err
			break
		}
		published++
		time.Sleep(2 * time.Millisecond) // a steady producer, not a burst
	}
	if refusal == nil {
		t.Fatalf("the store accepted %d events on a 40 MB disk with 2 MB free", published)
	}
	t.Logf("%d events published, then: %v", published, refusal)

	time.Sleep(fullFor) // the disk stays full: the outage under test
	duringOutage := rcv.counts()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()

	// Quiescence: every delivery recorded as SUCCEEDED.
	dc := deliveryClient(t, srv.grpcAddr)
	var dels []*hookwirev1.Delivery
	recovered := false
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		dels = listAllDeliveries(t, dc, tenant)
		done := 0
		for _, d := range dels {
			if d.GetStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED {
				done++
			}
		}
		if len(dels) == published && done == published {
			recovered = true
			break
		}
		time.Sleep(250 * time.Millisecond) // polling the API for the backlog to finish
	}
	counts := rcv.counts()
	most, mostID := maxReceipts(counts)
	mostOutage, _ := maxReceipts(duringOutage)
	extra := 0
	for _, n := range counts {
		extra += n - 1
	}
	var attempts int32
	for _, d := range dels {
		attempts += d.GetAttemptCount()
	}
	t.Logf("disk full for %v: max receipts of one webhook-id %d during the outage, %d in all (%s); %d extra receipts over %d deliveries; %d attempts recorded; recovered %v after space came back: %v",
		fullFor, mostOutage, most, mostID, extra, published, attempts, time.Since(freed).Round(100*time.Millisecond), recovered)
	t.Logf("agent metrics: %s", agentMetrics(t, metricsAddr, "hookwire_agent_sessions_total", "hookwire_agent_result_retries_total", "hookwire_agent_attempts_total", "hookwire_agent_results_acked_total"))

	if !recovered {
		t.Errorf("not every delivery was recorded as SUCCEEDED within 60s after space came back")
	}
	if most > maxExtra {
		t.Errorf("a webhook reached the receiver %d times; a full disk may cost at most %d receipts of one webhook-id", most, maxExtra)
	}
	for _, d := range dels {
		if d.GetAttemptCount() != 1 {
			t.Errorf("delivery %s has %d attempts, want 1 (the result held through the outage)", d.GetId(), d.GetAttemptCount())
			break
		}
	}
	if missing := published - len(counts); missing > 0 {
		t.Errorf("%d deliveries never reached the receiver", missing)
	}
}
