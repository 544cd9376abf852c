package main

// events publish: one event from --data, --file or stdin, or many from
// NDJSON with --batch.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"strconv"
	"strings"

	"buf.build/go/protovalidate"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

const (
	// batchBytes bounds the payload bytes of one PublishEvents request, well
	// under the server's smallest message limit (16 MiB).
	batchBytes = 8 << 20
	// maxLineBytes bounds one NDJSON line.
	maxLineBytes = 64 << 20
)

func (c *cli) eventsCmd() *cobra.Command {
	return c.noun("events", "Publish events",
		`Events are what producers publish; each one fans out to a delivery per
matching subscription. A publish returns once the event and its deliveries
are on disk.`,
		[]string{"event"}, true, c.eventsPublishCmd())
}

type publishFlags struct {
	eventType, data, file, contentType string
	metadata                           []string
	batch                              bool
	batchSize                          int
}

func (c *cli) eventsPublishCmd() *cobra.Command {
	var pf publishFlags
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Publish one event, or many from NDJSON with --batch",
		Long: `Publish one event of --type. The payload comes from --data, from --file, or
from stdin, and is delivered as exactly these bytes. It must be JSON unless
--content-type says otherwise (e.g. application/xml, application/pdf).

With --batch, read newline-delimited JSON from --file or stdin, one event per
line in the REST shape:

  {"type": "order.created", "payload": {"id": 1}}
  {"type": "order.paid", "payload": {"id": 1}, "metadata": {"region": "eu"}}

Each payload is delivered as its exact JSON text. The whole input is checked
before anything is sent; it then goes out in requests of up to --batch-size
events, each published atomically. If a request fails, the events of earlier
requests stay published and the error says which lines were not.`,
		Example: `  hookwire events publish --tenant acme --type order.created --data '{"id": 42, "total": "9.99"}'
  hookwire events publish --tenant acme --type order.created --file order.json
  curl -s https://example.com/order/42 | hookwire events publish --tenant acme --type order.created
  hookwire events publish --tenant acme --type invoice.rendered --file invoice.pdf --content-type application/pdf
  hookwire events publish --tenant acme --batch --file events.ndjson
  hookwire events publish --tenant acme --batch < events.ndjson -o json | jq -r '.results[].id'`,
		Args: c.argNames(),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, _ []string) error {
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		if pf.batch {
			return c.publishBatch(cmd, tenant, pf)
		}
		return c.publishOne(cmd, tenant, pf)
	})
	c.addTenantFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&pf.eventType, "type", "", "event type, e.g. order.created")
	f.StringVar(&pf.data, "data", "", "payload given inline")
	f.StringVar(&pf.file, "file", "", `read the payload (or, with --batch, the NDJSON) from this file ("-" for stdin)`)
	f.StringVar(&pf.contentType, "content-type", "application/json", "media type of the payload")
	f.StringArrayVar(&pf.metadata, "metadata", nil, "key=value to attach to the event (repeatable)")
	f.BoolVar(&pf.batch, "batch", false, "publish many events from NDJSON (one {\"type\":...,\"payload\":...} per line)")
	f.IntVar(&pf.batchSize, "batch-size", maxPageSize, "events per request with --batch (1 to 1000)")
	return cmd
}

// stdinIsTerminal says whether reading stdin would wait for typing.
func stdinIsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// readInput reads --file, or stdin for "-" or when no source was named.
func readInput(cmd *cobra.Command, file, what string) ([]byte, string, error) {
	if file != "" && file != "-" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, "", fmt.Errorf("read %s: %w", what, err)
		}
		return data, file, nil
	}
	in := cmd.InOrStdin()
	if file == "" && stdinIsTerminal(in) {
		return nil, "", usageErrorf("no %s: pass --file (or --data), or pipe it on stdin", what)
	}
	data, err := readAll(cmd, in)
	if err != nil {
		return nil, "", fmt.Errorf("read %s from stdin: %w", what, err)
	}
	return data, "stdin", nil
}

func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func (c *cli) publishOne(cmd *cobra.Command, tenant string, pf publishFlags) error {
	if pf.eventType == "" {
		return usageErrorf("pass --type, e.g. --type order.created (or --batch for NDJSON)")
	}
	if flagChanged(cmd, "batch-size") {
		return usageErrorf("--batch-size needs --batch")
	}
	if flagChanged(cmd, "data") && pf.file != "" {
		return usageErrorf("pass --data or --file, not both")
	}
	if _, _, err := mime.ParseMediaType(pf.contentType); err != nil {
		return usageErrorf("--content-type %q: %v", pf.contentType, err)
	}
	md, err := parseKeyValues("metadata", pf.metadata)
	if err != nil {
		return err
	}
	var payload []byte
	source := "--data"
	if flagChanged(cmd, "data") {
		payload = []byte(pf.data)
	} else {
		data, name, err := readInput(cmd, pf.file, "payload")
		if err != nil {
			return err
		}
		payload, source = data, name
	}
	if isJSONType(pf.contentType) {
		if len(bytes.TrimSpace(payload)) == 0 {
			return inputErrorf("the payload from %s is empty; send a JSON value, or set --content-type for other bytes", source)
		}
		if !json.Valid(payload) {
			return inputErrorf("the payload from %s is not valid JSON; fix it, or set --content-type to what it is", source)
		}
	}
	ctx, cancel := c.call(cmd)
	defer cancel()
	resp, err := hookwirev1.NewEventServiceClient(c.conn).PublishEvent(ctx, &hookwirev1.PublishEventRequest{
		Tenant: tenant,
		Event:  &hookwirev1.Event{Type: pf.eventType, Payload: payload, ContentType: pf.contentType, Metadata: md},
	})
	if err != nil {
		return err
	}
	return c.emit(cmd, resp, func(w io.Writer) error {
		if _, err := fmt.Fprintf(w, "Published %s (%s).\n", resp.GetId(), plural(int(resp.GetDeliveryCount()), "delivery", "deliveries")); err != nil {
			return err
		}
		return writeFilterErrors(w, "", resp.GetFilterErrors())
	})
}

// writeFilterErrors prints the subscriptions whose filter could not be
// evaluated for a published event, one line each, after prefix.
func writeFilterErrors(w io.Writer, prefix string, errs []*hookwirev1.FilterError) error {
	for _, fe := range errs {
		if _, err := fmt.Fprintf(w, "%sNot delivered to %s: %s\n", prefix, fe.GetSubscriptionId(), fe.GetError()); err != nil {
			return err
		}
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// batchEvent is one parsed NDJSON line.
type batchEvent struct {
	line  int
	event *hookwirev1.Event
}

var eventFields = protojson.UnmarshalOptions{}

// parseBatchLine reads {"type": ..., "payload": <JSON>, ...} like the REST
// API: the payload keeps its exact bytes, the rest is an Event in JSON.
func parseBatchLine(data []byte) (*hookwirev1.Event, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf(`want a JSON object like {"type":"order.created","payload":{...}}: %v`, err)
	}
	payload, hasPayload := fields["payload"]
	delete(fields, "payload")
	rest, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	ev := &hookwirev1.Event{}
	if err := eventFields.Unmarshal(rest, ev); err != nil {
		return nil, errors.New(protoErrText(err))
	}
	if ev.GetType() == "" {
		return nil, errors.New(`missing "type"`)
	}
	if !hasPayload {
		return nil, errors.New(`missing "payload"`)
	}
	ev.Payload = bytes.TrimSpace(payload)
	return ev, nil
}

// checkEvent applies the API's validation rules (from the protos) to one
// event, so a bad line is found before anything is sent.
func checkEvent(v protovalidate.Validator, ev *hookwirev1.Event) error {
	err := v.Validate(ev)
	var verr *protovalidate.ValidationError
	if err == nil || !errors.As(err, &verr) {
		return err
	}
	msgs := make([]string, 0, len(verr.Violations))
	for _, viol := range verr.Violations {
		msgs = append(msgs, protovalidate.FieldPathString(viol.Proto.GetField())+": "+viol.Proto.GetMessage())
	}
	return errors.New(strings.Join(msgs, "; "))
}

func (c *cli) publishBatch(cmd *cobra.Command, tenant string, pf publishFlags) error {
	for _, name := range []string{"type", "data", "content-type", "metadata"} {
		if flagChanged(cmd, name) {
			return usageErrorf("--%s cannot be combined with --batch: put it in each NDJSON line", name)
		}
	}
	if pf.batchSize < 1 || pf.batchSize > maxPageSize {
		return usageErrorf("--batch-size %d: must be 1 to %d", pf.batchSize, maxPageSize)
	}
	data, name, err := readInput(cmd, pf.file, "NDJSON input")
	if err != nil {
		return err
	}
	v, err := protovalidate.New()
	if err != nil {
		return fmt.Errorf("build event validator: %w", err)
	}
	var events []batchEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		ev, err := parseBatchLine(text)
		if err == nil {
			err = checkEvent(v, ev)
		}
		if err != nil {
			return inputErrorf("%s line %d: %v (nothing was published)", name, line, err)
		}
		events = append(events, batchEvent{line: line, event: ev})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return inputErrorf("%s: a line is longer than %d bytes (nothing was published)", name, maxLineBytes)
		}
		return fmt.Errorf("read %s: %w", name, err)
	}
	if len(events) == 0 {
		return inputErrorf("%s has no events: want one JSON object per line", name)
	}

	chunks := chunkEvents(events, pf.batchSize, batchBytes)
	client := hookwirev1.NewEventServiceClient(c.conn)
	resp := &hookwirev1.PublishEventsResponse{}
	deliveries := 0
	for i, chunk := range chunks {
		req := &hookwirev1.PublishEventsRequest{Tenant: tenant}
		for _, e := range chunk {
			req.Events = append(req.Events, e.event)
		}
		ctx, cancel := c.call(cmd)
		out, err := client.PublishEvents(ctx, req)
		cancel()
		if err != nil {
			return c.batchFailed(cmd, resp, chunks, i, err)
		}
		resp.Results = append(resp.Results, out.GetResults()...)
		for _, r := range out.GetResults() {
			deliveries += int(r.GetDeliveryCount())
		}
	}
	return c.emit(cmd, resp, func(w io.Writer) error {
		if _, err := fmt.Fprintf(w, "Published %s (%s) in %s.\n", plural(len(resp.Results), "event", "events"),
			plural(deliveries, "delivery", "deliveries"), plural(len(chunks), "request", "requests")); err != nil {
			return err
		}
		for i, r := range resp.Results {
			if err := writeFilterErrors(w, fmt.Sprintf("Line %d, %s: ", events[i].line, r.GetId()), r.GetFilterErrors()); err != nil {
				return err
			}
		}
		return nil
	})
}

// chunkEvents splits events into requests of at most n events and about
// maxBytes of payload (a single larger event goes alone).
func chunkEvents(events []batchEvent, n, maxBytes int) [][]batchEvent {
	var out [][]batchEvent
	start, size := 0, 0
	for i, e := range events {
		p := len(e.event.GetPayload())
		if i > start && (i-start == n || size+p > maxBytes) {
			out = append(out, events[start:i])
			start, size = i, 0
		}
		size += p
	}
	if start < len(events) {
		out = append(out, events[start:])
	}
	return out
}

// batchFailed prints what was published (for scripts, the usual document)
// and returns the error, naming the input lines that were not published.
func (c *cli) batchFailed(cmd *cobra.Command, done *hookwirev1.PublishEventsResponse, chunks [][]batchEvent, i int, err error) error {
	chunk := chunks[i]
	first, last := chunk[0].line, chunk[len(chunk)-1].line
	note := "nothing was published"
	if len(done.Results) > 0 {
		if c.output != "table" {
			if perr := c.emit(cmd, done, nil); perr != nil {
				return perr
			}
		}
		verb := "were"
		if len(done.Results) == 1 {
			verb = "was"
		}
		note = fmt.Sprintf("%s (input lines up to %d) %s published before the failure; lines from %d on were not",
			plural(len(done.Results), "event", "events"), chunks[i-1][len(chunks[i-1])-1].line, verb, first)
	}
	// The server counts events within the request ("event 3: ..."); name
	// the input line instead.
	if st, ok := status.FromError(err); ok {
		if m := batchEventIndex.FindStringSubmatch(st.Message()); m != nil {
			if k, convErr := strconv.Atoi(m[1]); convErr == nil && k < len(chunk) {
				p := st.Proto()
				p.Message = fmt.Sprintf("line %d: %s", chunk[k].line, strings.TrimPrefix(st.Message(), m[0]))
				return withNote(status.FromProto(p).Err(), "%s", note)
			}
		}
	}
	lines := fmt.Sprintf("lines %d-%d", first, last)
	if first == last {
		lines = fmt.Sprintf("line %d", first)
	}
	return withNote(fmt.Errorf("request %d of %d (%s): %w", i+1, len(chunks), lines, err), "%s", note)
}
