package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything one run produced; `-o json` prints it as is.
type Report struct {
	Command   string           `json:"command"`
	Started   time.Time        `json:"started"`
	Seconds   float64          `json:"seconds"`
	Mode      string           `json:"mode"` // local or remote
	Machine   Machine          `json:"machine"`
	Baselines []BaselineResult `json:"baselines"`
	Scenarios []*Scenario      `json:"scenarios"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model"`
	MemTotal   string `json:"mem_total"`
	Kernel     string `json:"kernel"`
	GoVersion  string `json:"go_version"`
	Hookwire   string `json:"hookwire_version"`
	// Load average (1 minute) when the run started and ended: other work
	// on the machine competes with the benchmark.
	LoadStart float64 `json:"load_avg_start"`
	LoadEnd   float64 `json:"load_avg_end"`
}

// BaselineResult is a plain Go HTTP client posting the same payloads to
// the same sink: what the machine can do at all.
type BaselineResult struct {
	For         string      `json:"for"`  // what it is compared with
	Mode        string      `json:"mode"` // closed-loop or open-loop
	Concurrency int         `json:"concurrency"`
	OfferedRate float64     `json:"offered_per_second,omitempty"`
	Seconds     float64     `json:"seconds"`
	Requests    int64       `json:"requests"`
	Rate        float64     `json:"per_second"`
	Errors      int64       `json:"errors"`
	Latency     Percentiles `json:"latency"`
}

// Scenario is the result of one scenario (or one variant of it).
type Scenario struct {
	Name      string                 `json:"name"`
	Variant   string                 `json:"variant,omitempty"`
	Params    map[string]any         `json:"params"`
	Seconds   float64                `json:"seconds"`
	Metrics   []Metric               `json:"metrics"`
	Processes []ProcessReport        `json:"processes,omitempty"`
	Errors    map[string]int64       `json:"errors,omitempty"`
	Notes     []string               `json:"notes,omitempty"`
	Failed    string                 `json:"failed,omitempty"`
	Extra     map[string]any         `json:"extra,omitempty"`
	Latencies map[string]Percentiles `json:"latencies,omitempty"`
}

// Metric is one figure, with its target if it has one.
type Metric struct {
	Key    string  `json:"key"`
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target,omitempty"` // e.g. ">= 50000"
	Status string  `json:"status,omitempty"` // met, missed
}

// target is a threshold: value op limit.
type target struct {
	op    string // ">=" or "<="
	limit float64
}

func atLeast(v float64) *target { return &target{">=", v} }
func atMost(v float64) *target  { return &target{"<=", v} }

func (s *Scenario) add(key, name string, v float64, unit string, t *target) {
	m := Metric{Key: key, Name: name, Value: round(v), Unit: unit}
	if t != nil && !math.IsNaN(v) {
		m.Target = t.op + " " + formatValue(t.limit, unit)
		met := (t.op == ">=" && v >= t.limit) || (t.op == "<=" && v <= t.limit)
		m.Status = map[bool]string{true: "met", false: "missed"}[met]
	}
	s.Metrics = append(s.Metrics, m)
}

func (s *Scenario) note(format string, args ...any) {
	s.Notes = append(s.Notes, fmt.Sprintf(format, args...))
}

func (s *Scenario) errorf(kind string, n int64) {
	if n == 0 {
		return
	}
	if s.Errors == nil {
		s.Errors = map[string]int64{}
	}
	s.Errors[kind] += n
}

func (s *Scenario) metric(key string) (Metric, bool) {
	for _, m := range s.Metrics {
		if m.Key == key {
			return m, true
		}
	}
	return Metric{}, false
}

func round(v float64) float64 {
	if v == math.Trunc(v) || math.IsNaN(v) || math.IsInf(v, 0) {
		return v // counts stay exact
	}
	// Keep 4 significant digits: enough for a benchmark, short in JSON.
	p := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(v))))
	return math.Round(v*p) / p
}

func formatValue(v float64, unit string) string {
	switch unit {
	case "bytes":
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case "ms", "s":
		if math.Abs(v) >= 100 {
			return withCommas(v) + " " + unit
		}
		return fmt.Sprintf("%.3g %s", v, unit)
	case "%":
		return fmt.Sprintf("%.2f%%", v)
	case "ratio":
		return fmt.Sprintf("%.2f×", v)
	case "/s":
		return withCommas(v) + "/s"
	case "":
		return withCommas(v)
	}
	return withCommas(v) + " " + unit
}

func withCommas(v float64) string {
	if math.Abs(v) < 100 && v != math.Trunc(v) {
		return fmt.Sprintf("%.3g", v)
	}
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// WriteJSON prints the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "hookwire bench (%s) — %d CPUs (%s), %s RAM, %s, %s, %s\n", r.Mode, m.CPUs, m.CPUModel, m.MemTotal, m.Kernel, m.GoVersion, r.Started.Format(time.RFC3339))
	fmt.Fprintf(w, "load average (1 min): %.2f at start, %.2f at end\n", m.LoadStart, m.LoadEnd)
	fmt.Fprintf(w, "command: %s\n\n", r.Command)
	if len(r.Baselines) > 0 {
		fmt.Fprintln(w, "== baseline: plain Go HTTP client → sink (same payloads, same concurrency)")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  for\tmode\tconcurrency\toffered\tachieved\tp50\tp90\tp99\tmax\terrors")
		for _, b := range r.Baselines {
			off := "max"
			if b.OfferedRate > 0 {
				off = formatValue(b.OfferedRate, "/s")
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%.2f ms\t%.2f ms\t%.2f ms\t%.2f ms\t%d\n", b.For, b.Mode, b.Concurrency, off, formatValue(b.Rate, "/s"),
				b.Latency.P50, b.Latency.P90, b.Latency.P99, b.Latency.Max, b.Errors)
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	for _, s := range r.Scenarios {
		title := s.Name
		if s.Variant != "" {
			title += " (" + s.Variant + ")"
		}
		fmt.Fprintf(w, "== %s — %.1fs\n", title, s.Seconds)
		if len(s.Params) > 0 {
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(s.Params)) {
				parts = append(parts, fmt.Sprintf("%s=%v", k, s.Params[k]))
			}
			fmt.Fprintf(w, "  params: %s\n", strings.Join(parts, " "))
		}
		if s.Failed != "" {
			fmt.Fprintf(w, "  FAILED: %s\n", s.Failed)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  metric\tvalue\ttarget\t")
		for _, m := range s.Metrics {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", m.Name, formatValue(m.Value, m.Unit), m.Target, m.Status)
		}
		tw.Flush()
		if len(s.Processes) > 0 {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  process\tpid\tCPU s (measured window)\tpeak RSS\tpeak anon RSS\t")
			for _, p := range s.Processes {
				ex := ""
				if p.Exited {
					ex = "exited"
				}
				fmt.Fprintf(tw, "  %s\t%d\t%.2f\t%.1f MiB\t%.1f MiB\t%s\n", p.Role, p.PID, p.CPUSeconds, float64(p.PeakRSS)/(1<<20), float64(p.PeakAnon)/(1<<20), ex)
			}
			tw.Flush()
		}
		if len(s.Errors) > 0 {
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(s.Errors)) {
				parts = append(parts, fmt.Sprintf("%s: %d", k, s.Errors[k]))
			}
			fmt.Fprintf(w, "  errors: %s\n", strings.Join(parts, ", "))
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		fmt.Fprintln(w)
	}
	met, missed := 0, 0
	for _, s := range r.Scenarios {
		for _, m := range s.Metrics {
			switch m.Status {
			case "met":
				met++
			case "missed":
				missed++
			}
		}
	}
	fmt.Fprintf(w, "targets: %d met, %d missed; total %.0fs\n", met, missed, r.Seconds)
}
