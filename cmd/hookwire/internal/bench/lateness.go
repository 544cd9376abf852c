package bench

import (
	"context"
	"slices"
	"sync"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// Where retry lateness comes from.
const (
	latenessFromAPI  = "attempts API: start_time - due_time of every retry"
	latenessFromSink = "sink: next arrival - (previous failure + delay x 1.2, the latest jittered due time), after sink faults only; a lower bound (the control plane does not report due_time)"
)

// maxAttemptLookups bounds the ListAttempts calls at the end of a run;
// beyond it retried deliveries are sampled evenly.
const maxAttemptLookups = 5000

// lateness is how late retries went out: for every retry (attempt 2 and
// later) its start time minus the time it was due, plus, for each pending
// delivery whose next attempt is already past due when measured, how long
// past due it is (a lower bound of its lateness).
type lateness struct {
	source   string
	samples  []int64 // nanoseconds, overdue deliveries included
	dues     []int64 // when each sample was due, unix nanoseconds
	retries  int     // retries measured
	noDue    int     // retries the control plane recorded without a due time
	overdue  int     // pending deliveries past due when measured
	sampled  bool    // more retried deliveries than maxAttemptLookups
	outcomes map[string]int
	// lateAfter counts retries more than lateSlow late (attempts API) by
	// the outcome of the attempt before: a killed agent's lease expires
	// first (attempt timeout + lease grace), so those are expected late.
	lateAfter map[string]int
}

// lateSlow is how late a retry must be to be counted in lateAfter.
const lateSlow = time.Second

// retryLateness measures the retries of dels. It asks the attempts API for
// every retried delivery; when the control plane records no due times, it
// falls back to the sink's records of the same webhook-ids (hits) with the
// subscriptions' retry delay. now is when dels were listed.
func retryLateness(ctx context.Context, api *API, tenant string, dels []*hookwirev1.Delivery, now time.Time, hits map[string][]hit, delay time.Duration) lateness {
	l := lateness{outcomes: map[string]int{}, lateAfter: map[string]int{}}
	var retried []*hookwirev1.Delivery
	for _, d := range dels {
		if d.GetAttemptCount() >= 2 {
			retried = append(retried, d)
		}
		if d.GetStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING && d.GetAttemptCount() >= 1 && d.GetNextAttemptTime() != nil {
			if late := now.Sub(d.GetNextAttemptTime().AsTime()); late > 0 {
				l.overdue++
				l.samples = append(l.samples, int64(late))
				l.dues = append(l.dues, d.GetNextAttemptTime().AsTime().UnixNano())
			}
		}
	}
	if len(retried) > maxAttemptLookups {
		l.sampled = true
		step := float64(len(retried)) / maxAttemptLookups
		picked := make([]*hookwirev1.Delivery, 0, maxAttemptLookups)
		for i := range maxAttemptLookups {
			picked = append(picked, retried[int(float64(i)*step)])
		}
		retried = picked
	}

	var mu sync.Mutex
	var fromAPI, apiDues []int64
	jobs := make(chan *hookwirev1.Delivery)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for d := range jobs {
				actx, cancel := context.WithTimeout(ctx, 10*time.Second)
				resp, err := api.deliveries().ListAttempts(actx, &hookwirev1.ListAttemptsRequest{Tenant: tenant, DeliveryId: d.GetId()})
				cancel()
				if err != nil {
					continue
				}
				mu.Lock()
				prev := "none"
				for _, a := range resp.GetAttempts() {
					l.outcomes[a.GetOutcome().String()]++
					before := prev
					prev = a.GetOutcome().String()
					if a.GetNumber() < 2 {
						continue
					}
					if a.GetDueTime() == nil || a.GetStartTime() == nil {
						l.noDue++
						continue
					}
					late := a.GetStartTime().AsTime().Sub(a.GetDueTime().AsTime())
					fromAPI = append(fromAPI, int64(late))
					apiDues = append(apiDues, a.GetDueTime().AsTime().UnixNano())
					if late > lateSlow {
						l.lateAfter[before]++
					}
				}
				mu.Unlock()
			}
		})
	}
	for _, d := range retried {
		jobs <- d
	}
	close(jobs)
	wg.Wait()

	if len(fromAPI) > 0 || len(retried) == 0 {
		l.source = latenessFromAPI
		l.retries = len(fromAPI)
		l.samples = append(l.samples, fromAPI...)
		l.dues = append(l.dues, apiDues...)
		return l
	}
	l.source = latenessFromSink
	var keep map[string]bool
	if dels != nil {
		keep = map[string]bool{}
		for _, d := range dels {
			keep[d.GetId()] = true
		}
	}
	late, dues := sinkLateness(hits, keep, delay)
	l.retries = len(late)
	l.samples = append(l.samples, late...)
	l.dues = append(l.dues, dues...)
	return l
}

// sinkLateness is the fallback: for each request that followed a failure
// the sink injected (500 or reset, which the sink answers at once), how
// long after the latest time the retry could be due (the failure's end
// plus delay and the control plane's ±20% jitter) it arrived, 0 if
// earlier. Requests after a hang or 429 are skipped: those retries wait
// the throttling minimum, not delay. keep, if not nil, selects the
// webhook-ids. dues are the nominal due times (failure + delay).
func sinkLateness(hits map[string][]hit, keep map[string]bool, delay time.Duration) (late, dues []int64) {
	latest := delay + delay/5
	for id, hs := range hits {
		if keep != nil && !keep[id] {
			continue
		}
		for i := 1; i < len(hs); i++ {
			if k := hs[i-1].kind; k != fault500 && k != faultReset {
				continue
			}
			late = append(late, max(0, hs[i].at-(hs[i-1].end+int64(latest))))
			dues = append(dues, hs[i-1].end+int64(delay))
		}
	}
	return late, dues
}

// byPhase splits l's samples by the phase they were due in: phases are
// named in order and each ends at its time (unix ns); samples due after
// the last end go to the last phase.
func (l lateness) byPhase(names []string, ends []int64) map[string]Percentiles {
	split := map[string][]int64{}
	for i, due := range l.dues {
		p := len(names) - 1
		for j, end := range ends {
			if due < end {
				p = j
				break
			}
		}
		split[names[p]] = append(split[names[p]], l.samples[i])
	}
	out := map[string]Percentiles{}
	for name, xs := range split {
		out[name] = percentiles(xs)
	}
	return out
}

// listDeliveries lists a tenant's deliveries (all, or those of eventID),
// at most limit of them.
func (a *API) listDeliveries(ctx context.Context, tenant, eventID string, limit int) ([]*hookwirev1.Delivery, error) {
	var out []*hookwirev1.Delivery
	token := ""
	for len(out) < limit {
		resp, err := a.deliveries().ListDeliveries(ctx, &hookwirev1.ListDeliveriesRequest{
			Tenant: tenant, EventId: eventID, PageSize: 1000, PageToken: token,
		})
		if err != nil {
			return out, err
		}
		out = append(out, resp.GetDeliveries()...)
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	return out, nil
}

// addLateness reports l under key (retry_lateness, quiet_retry_lateness).
func (s *Scenario) addLateness(key, what string, l lateness, p99 *target) Percentiles {
	p := percentiles(slices.Clone(l.samples))
	src := "attempts API"
	if l.source == latenessFromSink {
		src = "sink, lower bound"
	}
	s.add(key+"_p50", what+" p50 ("+src+")", p.P50, "ms", nil)
	s.add(key+"_p99", what+" p99 ("+src+")", p.P99, "ms", p99)
	s.add(key+"_max", what+" max ("+src+")", p.Max, "ms", nil)
	if s.Latencies == nil {
		s.Latencies = map[string]Percentiles{}
	}
	s.Latencies[key] = p
	return p
}
