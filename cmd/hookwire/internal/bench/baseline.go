package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// plainClient is what a webhook sender without Hookwire would use: one
// pooled net/http client, sized like the http transport's.
func plainClient(conc int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        max(conc, 100),
		MaxIdleConnsPerHost: max(conc, 100),
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}}
}

// post sends one webhook the way the http transport does (POST, JSON body,
// a webhook-id header) and reports whether the sink accepted it.
func post(ctx context.Context, c *http.Client, url, id string, payload []byte) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return false
	}
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["Webhook-Id"] = []string{id}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// baseline measures, closed loop, how many webhooks conc concurrent plain
// clients get through the sink, posting the bench's standard payloads.
func (b *Bench) baseline(ctx context.Context, what string, conc int) (BaselineResult, error) {
	return b.baselineOf(ctx, what, conc, func(sent, seq int64) []byte { return makePayload(sent, seq, b.cfg.PayloadSize) })
}

// baselineOf is baseline with the payloads payload makes.
func (b *Bench) baselineOf(ctx context.Context, what string, conc int, payload func(sentNanos, seq int64) []byte) (BaselineResult, error) {
	// Other load on the machine can stall a run for seconds; a baseline
	// whose p99 is above a second measured that, not the machine. Measure
	// again (at most twice more) and say so.
	var r BaselineResult
	var err error
	for try := 1; try <= 3; try++ {
		if r, err = b.baselineOnce(ctx, what, conc, payload); err != nil || r.Latency.P99 < 1000 {
			break
		}
		b.logf("baseline stalled (p99 %.0f ms); measuring again", r.Latency.P99)
		r.For += fmt.Sprintf(" (attempt %d: stalled, p99 %.0f ms)", try, r.Latency.P99)
		if try < 3 {
			b.report.Baselines = append(b.report.Baselines, r)
		}
	}
	if err == nil {
		b.report.Baselines = append(b.report.Baselines, r)
	}
	return r, err
}

func (b *Bench) baselineOnce(ctx context.Context, what string, conc int, payload func(sentNanos, seq int64) []byte) (BaselineResult, error) {
	tag := b.newTag("baseline")
	url := b.sink.url(tag, 0)
	client := plainClient(conc)
	defer client.CloseIdleConnections()
	sq := newSeqs(false)
	d := b.cfg.BaselineDuration
	b.logf("baseline for %s: %d concurrent plain HTTP clients for %s", what, conc, d)
	var errs atomic.Int64
	ctx2, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for ctx2.Err() == nil {
				seq := sq.take(1)
				if !post(ctx2, client, url, "bl_"+strconv.FormatInt(seq, 10), payload(time.Now().UnixNano(), seq)) && ctx2.Err() == nil {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	if ctx.Err() != nil {
		return BaselineResult{}, ctx.Err()
	}
	n := b.sink.Count()
	return BaselineResult{For: what, Mode: "closed-loop", Concurrency: conc, Seconds: round(el.Seconds()), Requests: n, Rate: round(rate(n, el)), Errors: errs.Load(), Latency: percentiles(b.sink.latencies(nil))}, nil
}

// openLoopBaseline posts at a fixed rate for d, as the latency scenario
// publishes, and returns the sink-side latencies.
func (b *Bench) openLoopBaseline(ctx context.Context, r int, d time.Duration, workers int) BaselineResult {
	tag := b.newTag("baseline-open")
	url := b.sink.url(tag, 0)
	client := plainClient(workers)
	defer client.CloseIdleConnections()
	sq := newSeqs(false)
	var errs atomic.Int64
	b.logf("baseline: plain HTTP client, open loop at %d/s for %s", r, d)
	pc := paced(ctx, r, d, workers, func(sched time.Time) {
		seq := sq.take(1)
		if !post(ctx, client, url, "bl_"+strconv.FormatInt(seq, 10), makePayload(sched.UnixNano(), seq, b.cfg.PayloadSize)) {
			errs.Add(1)
		}
	})
	n := b.sink.Count()
	res := BaselineResult{For: "latency", Mode: "open-loop", Concurrency: workers, OfferedRate: float64(r), Seconds: round(pc.elapsed.Seconds()), Requests: n, Rate: round(rate(n, pc.elapsed)), Errors: errs.Load(), Latency: percentiles(b.sink.latencies(nil))}
	b.report.Baselines = append(b.report.Baselines, res)
	return res
}

// pacing is what an open-loop run did.
type pacing struct {
	scheduled int64
	elapsed   time.Duration
	maxLag    time.Duration // worst delay between a due time and its hand-off to a worker
}

// paced calls fn for events due every 1/r seconds during d, from workers
// goroutines (open loop: a slow call does not delay the schedule; when all
// workers are busy the hand-off waits, and since fn gets the due time, the
// wait shows up as latency instead of being omitted).
func paced(ctx context.Context, r int, d time.Duration, workers int, fn func(sched time.Time)) pacing {
	jobs := make(chan time.Time, max(r, 1))
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for t := range jobs {
				fn(t)
			}
		})
	}
	var p pacing
	start := time.Now()
	step := float64(time.Second) / float64(r)
	for i := int64(0); ; i++ {
		due := start.Add(time.Duration(float64(i) * step))
		if due.Sub(start) >= d || ctx.Err() != nil {
			break
		}
		if wait := time.Until(due); wait > 200*time.Microsecond {
			time.Sleep(wait)
		}
		if lag := time.Since(due); lag > p.maxLag {
			p.maxLag = lag
		}
		jobs <- due
		p.scheduled++
	}
	close(jobs)
	wg.Wait()
	p.elapsed = time.Since(start)
	return p
}
