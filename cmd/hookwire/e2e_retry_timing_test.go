package main

import (
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// failingReceiver answers every webhook with 500 and records when each
// request arrived, by webhook-id.
type failingReceiver struct {
	url  string
	mu   sync.Mutex
	hits map[string][]time.Time
	seen chan struct{}
}

func newFailingReceiver(t *testing.T) *failingReceiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &failingReceiver{url: "http://" + lis.Addr().String() + "/hook", hits: map[string][]time.Time{}, seen: make(chan struct{}, 1000)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		now := time.Now()
		r.mu.Lock()
		id := req.Header.Get("webhook-id")
		r.hits[id] = append(r.hits[id], now)
		r.mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
		select {
		case r.seen <- struct{}{}:
		default:
		}
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Close() })
	return r
}

// arrivals returns the arrival times of one webhook-id.
func (r *failingReceiver) arrivals(id string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.hits[id]...)
}

// ids returns the webhook-ids received so far.
func (r *failingReceiver) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id := range r.hits {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// await waits until the webhook-id id arrived n times, or within passes;
// it returns the arrivals seen.
func (r *failingReceiver) await(id string, n int, within time.Duration) []time.Time {
	deadline := time.After(within)
	for {
		got := r.arrivals(id)
		if len(got) >= n {
			return got
		}
		select {
		case <-r.seen:
		case <-deadline:
			return got
		}
	}
}

type attemptJSON struct {
	Number     int       `json:"number"`
	StatusCode int       `json:"status_code"`
	StartTime  time.Time `json:"start_time"`
	DueTime    time.Time `json:"due_time"`
}

// TestRetriesGoOutOnTimeOnAQuietServer: real server, agent and http
// plugin; a receiver that always answers 500; a subscription whose
// schedule retries four times one second apart; one event and nothing
// else. Every retry reaches the receiver on time: no other traffic is
// needed to wake the scheduler. Explicit schedules get the server's ±20%
// jitter (retry.DefaultOptions), so a retry arrives 0.8s to 1.2s after
// the attempt before it ended; the attempt record's due_time carries the
// jittered time, so start_time - due_time (how late the attempt went
// out) is checked against 150 ms directly.
func TestRetriesGoOutOnTimeOnAQuietServer(t *testing.T) {
	const (
		retries  = 4
		delay    = time.Second
		jitter   = 0.2
		lateness = 150 * time.Millisecond
	)
	rcv := newFailingReceiver(t)
	srv := startServer(t, t.TempDir())
	startAgent(t, srv.grpcAddr, "timing-agent")
	if code := restCall(t, srv.httpAddr, "POST", "/v1/tenants", `{"id":"acme"}`, nil); code != 200 {
		t.Fatalf("create tenant: HTTP %d", code)
	}
	delays := strings.TrimSuffix(strings.Repeat(`"1s",`, retries), ",")
	body := `{"event_types":["order.*"],"target":{"transport":"http","config":{"url":"` + rcv.url + `"}},` +
		`"retry_policy":{"schedule":{"delays":[` + delays + `]}}}`
	if code := restCall(t, srv.httpAddr, "POST", "/v1/tenants/acme/subscriptions", body, nil); code != 200 {
		t.Fatalf("create subscription: HTTP %d", code)
	}
	publishREST(t, srv.httpAddr, "acme", `{"type":"order.created","payload":{"n":1}}`)

	// The first attempt shows the delivery id (the webhook-id).
	deadline := time.Now().Add(30 * time.Second)
	var id string
	for id == "" {
		if ids := rcv.ids(); len(ids) > 0 {
			id = ids[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first attempt never reached the receiver")
		}
		select {
		case <-rcv.seen:
		case <-time.After(time.Until(deadline)):
		}
	}
	// All retries are due within 4 x 1.2s; allow twice that before failing.
	got := rcv.await(id, 1+retries, 2*time.Duration(retries)*time.Duration(float64(delay)*(1+jitter)))
	var gaps []string
	for i := 1; i < len(got); i++ {
		gaps = append(gaps, got[i].Sub(got[i-1]).Round(time.Millisecond).String())
	}
	if len(got) != 1+retries {
		t.Fatalf("receiver got %d attempts of %s within the schedule's time, want %d (gaps %v): due retries were not dispatched", len(got), id, 1+retries, gaps)
	}
	// At the receiver: each retry came one jittered delay after the
	// previous attempt, plus at most the allowed lateness.
	lo, hi := time.Duration(float64(delay)*(1-jitter)), time.Duration(float64(delay)*(1+jitter))+lateness
	for i := 1; i < len(got); i++ {
		if gap := got[i].Sub(got[i-1]); gap < lo || gap > hi {
			t.Errorf("attempt %d arrived %v after attempt %d, want %v to %v (gaps %v)", i+1, gap, i, lo, hi, gaps)
		}
	}

	// The attempt records say when each attempt was due and when it
	// started: lateness within the bound, for every attempt.
	var list struct {
		Attempts []attemptJSON `json:"attempts"`
	}
	waitFor := time.Now().Add(10 * time.Second)
	for {
		restCall(t, srv.httpAddr, "GET", "/v1/tenants/acme/deliveries/"+id+"/attempts", "", &list)
		if len(list.Attempts) == 1+retries || time.Now().After(waitFor) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling the API for the last recorded result
	}
	if len(list.Attempts) != 1+retries {
		t.Fatalf("%d attempts recorded, want %d", len(list.Attempts), 1+retries)
	}
	var late []string
	for _, a := range list.Attempts {
		if a.DueTime.IsZero() {
			t.Errorf("attempt %d has no due_time", a.Number)
			continue
		}
		l := a.StartTime.Sub(a.DueTime)
		late = append(late, fmt.Sprintf("#%d %v", a.Number, l.Round(time.Millisecond)))
		// The first attempt is due when the event arrived: its lateness
		// is the publish's durable commit and the first hand-off to the
		// agent, not the scheduler's; bound it loosely.
		limit := lateness
		if a.Number == 1 {
			limit = time.Second
		}
		if l < -50*time.Millisecond || l > limit {
			t.Errorf("attempt %d started %v after it was due, want at most %v", a.Number, l, limit)
		}
	}
	t.Logf("gaps at the receiver %v; lateness (start - due) %v", gaps, late)
	var del struct {
		Status string `json:"status"`
	}
	restCall(t, srv.httpAddr, "GET", "/v1/tenants/acme/deliveries/"+id, "", &del)
	if del.Status != "DELIVERY_STATUS_DEAD" {
		t.Errorf("after the last retry the delivery is %s, want DEAD", del.Status)
	}
}
