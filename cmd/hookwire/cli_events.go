package main

// events publish: one event from --data, --file or stdin, or many from
// NDJSON with --batch. events get and list: read them back.

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
	"time"
	"unicode/utf8"

	"buf.build/go/protovalidate"
	"github.com/hookwire/hookwire/controlplane"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const (
	// batchBytes bounds the payload bytes of one PublishEvents request, well
	// under the server's smallest message limit (16 MiB).
	batchBytes = 8 << 20
	// maxLineBytes bounds one NDJSON line.
	maxLineBytes = 64 << 20
)

func (c *cli) eventsCmd() *cobra.Command {
	return c.noun("events", "Publish events and read them back",
		`Events are what producers publish; each one fans out to a delivery per
matching subscription. A publish returns once the event and its deliveries
are on disk. 'events get' shows an event with its deliveries and why the
other subscriptions got none; 'events list' lists a tenant's events.`,
		[]string{"event"}, true, c.eventsPublishCmd(), c.eventsGetCmd(), c.eventsListCmd())
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

func eventListHint(tenant string) string {
	return fmt.Sprintf("check --tenant and the id; list events with 'hookwire events list --tenant %s'", tenant)
}

func (c *cli) eventsGetCmd() *cobra.Command {
	var payloadOnly bool
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show an event, where it was delivered, and why not elsewhere",
		Long: `Show an event as it was published (payload, metadata, keys), its deliveries,
and each of the tenant's other subscriptions with the reason it got no
delivery.

Which subscriptions matched is recorded when the event is published; why the
others did not is not. The reasons are worked out now, by matching each
subscription as it is now against the event, exactly as a publish would.
A subscription changed since the event is marked "changed since": its reason
is what its settings say now, not necessarily what they said then.

With -o json (or yaml) the output is the REST API's answer: a JSON payload
is its JSON value, any other payload base64. --payload prints only the
payload, byte for byte.`,
		Example: `  hookwire events get --tenant acme evt_01J...
  hookwire events get --tenant acme evt_01J... -o json | jq '.unmatched_subscriptions[] | {subscription_id, reason}'
  hookwire events get --tenant acme evt_01J... --payload > invoice.pdf`,
		Args: c.argNames("ID"),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, args []string) error {
		if payloadOnly && flagChanged(cmd, "output") {
			return usageErrorf("--payload prints the payload as it is; it cannot be combined with --output")
		}
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		ctx, cancel := c.call(cmd)
		defer cancel()
		resp, err := hookwirev1.NewEventServiceClient(c.conn).GetEvent(ctx, &hookwirev1.GetEventRequest{Tenant: tenant, Id: args[0]})
		if err != nil {
			return notFoundHint(err, "%s", eventListHint(tenant))
		}
		if payloadOnly {
			_, err := cmd.OutOrStdout().Write(resp.GetEvent().GetPayload())
			return err
		}
		if c.output != "table" {
			return c.emitREST(cmd, resp)
		}
		return eventView(cmd.OutOrStdout(), tenant, resp)
	})
	c.addTenantFlag(cmd)
	cmd.Flags().BoolVar(&payloadOnly, "payload", false, "print only the payload, byte for byte")
	return cmd
}

// emitREST prints msg as the REST API writes it (json or yaml).
func (c *cli) emitREST(cmd *cobra.Command, msg proto.Message) error {
	data, err := controlplane.RESTJSON(msg)
	if err != nil {
		return err
	}
	return writeDoc(cmd.OutOrStdout(), c.output, data)
}

// eventView is the table view of GetEvent.
func eventView(w io.Writer, tenant string, resp *hookwirev1.GetEventResponse) error {
	ev := resp.GetEvent()
	f := newFields(w)
	f.add("ID", ev.GetId())
	f.add("Tenant", ev.GetTenant())
	f.add("Type", ev.GetType())
	f.add("Received", stamp(ev.GetReceiveTime()))
	f.add("Content type", ev.GetContentType())
	f.add("Idempotency key", ev.GetIdempotencyKey())
	f.add("Ordering key", ev.GetOrderingKey())
	f.add("Metadata", joinMap(ev.GetMetadata()))
	f.add("Traceparent", resp.GetTraceparent())
	if err := f.flush(); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "\nPayload (%s):\n%s\n", plural(len(ev.GetPayload()), "byte", "bytes"), payloadText(ev)); err != nil {
		return err
	}

	ds := resp.GetDeliveries()
	if _, err := fmt.Fprintf(w, "\nDeliveries (%d):\n", len(ds)); err != nil {
		return err
	}
	if len(ds) == 0 {
		if _, err := fmt.Fprintln(w, "none"); err != nil {
			return err
		}
	} else {
		t := newTable(w, "DELIVERY", "SUBSCRIPTION", "STATUS", "ATTEMPTS", "CREATED", "HOW")
		for _, d := range ds {
			how := "matched"
			if d.GetResent() {
				how = "resent"
			}
			t.row(d.GetDeliveryId(), d.GetSubscriptionId(), enumLabel(d.GetStatus().String(), "DELIVERY_STATUS_"),
				strconv.Itoa(int(d.GetAttemptCount())), ago(d.GetCreateTime()), how)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if resp.GetDeliveriesTruncated() {
		if _, err := fmt.Fprintf(w, "More deliveries: hookwire deliveries list --tenant %s --event %s --all\n", tenant, ev.GetId()); err != nil {
			return err
		}
	}

	us := resp.GetUnmatchedSubscriptions()
	if len(us) == 0 && !resp.GetUnmatchedTruncated() {
		return nil
	}
	if _, err := fmt.Fprintf(w, "\nSubscriptions without a delivery (%d); each reason comes from the subscription as it is now:\n", len(us)); err != nil {
		return err
	}
	t := newTable(w, "SUBSCRIPTION", "REASON", "DETAIL")
	changed := false
	for _, u := range us {
		reason := enumLabel(u.GetReason().String(), "NO_MATCH_REASON_")
		if u.GetChangedSinceEvent() {
			reason += " (changed since)"
			changed = true
		}
		t.row(u.GetSubscriptionId(), reason, u.GetDetail())
	}
	if err := t.flush(); err != nil {
		return err
	}
	if changed {
		if _, err := fmt.Fprintln(w, `"changed since": the subscription changed after the event; its settings then are not recorded.`); err != nil {
			return err
		}
	}
	if resp.GetUnmatchedTruncated() {
		if _, err := fmt.Fprintf(w, "The tenant has more subscriptions than these %d.\n", len(us)); err != nil {
			return err
		}
	}
	return nil
}

// payloadText shows a payload in the table view: as it is when it is
// text, else its size and type.
func payloadText(ev *hookwirev1.Event) string {
	p := ev.GetPayload()
	if len(p) == 0 {
		return "(empty)"
	}
	if isText(p) {
		return string(p)
	}
	return fmt.Sprintf("(binary, %s; print it with --payload, or -o json shows it base64)", ev.GetContentType())
}

// isText reports whether b is UTF-8 without control characters other than
// tab and line breaks, so printing it cannot upset a terminal.
func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

func (c *cli) eventsListCmd() *cobra.Command {
	var (
		p                              paging
		eventType, start, end, idemKey string
		since                          time.Duration
		payloads                       bool
	)
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List a tenant's events, newest first",
		Long: `List a tenant's events, newest first, without payloads unless --payloads is
given. 'hookwire events get ID' shows one event with its payload and where
it went. With -o json (or yaml) the output is the REST API's answer.`,
		Example: `  hookwire events list --tenant acme
  hookwire events list --tenant acme --type 'order.*' --since 1h
  hookwire events list --tenant acme --idempotency-key order-42-created
  hookwire events list --tenant acme --start 2026-11-01T00:00:00Z --end 2026-11-02T00:00:00Z --all -o json
  hookwire events list --tenant acme --type order.created --limit 5 --payloads`,
		Args: c.argNames(),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, _ []string) error {
		if err := p.check(); err != nil {
			return err
		}
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		req := &hookwirev1.ListEventsRequest{Tenant: tenant, EventType: eventType, IdempotencyKey: idemKey}
		if req.StartTime, req.EndTime, err = timeRangeFlags(cmd, since, start, end); err != nil {
			return err
		}
		if payloads {
			req.View = hookwirev1.EventView_EVENT_VIEW_FULL
		}
		client := hookwirev1.NewEventServiceClient(c.conn)
		list, next, err := collect(&p, func(size int32, token string) ([]*hookwirev1.Event, string, error) {
			ctx, cancel := c.call(cmd)
			defer cancel()
			req.PageSize, req.PageToken = size, token
			resp, err := client.ListEvents(ctx, req)
			return resp.GetEvents(), resp.GetNextPageToken(), err
		})
		if err != nil {
			return err
		}
		if c.output != "table" {
			return c.emitREST(cmd, &hookwirev1.ListEventsResponse{Events: list, NextPageToken: next})
		}
		if len(list) == 0 {
			fmt.Fprintln(cmd.ErrOrStderr(), "No events match.")
			moreHint(cmd, next)
			return nil
		}
		header := []string{"ID", "TYPE", "RECEIVED", "IDEMPOTENCY KEY", "METADATA"}
		if payloads {
			header = append(header, "PAYLOAD")
		}
		t := newTable(cmd.OutOrStdout(), header...)
		for _, ev := range list {
			row := []string{ev.GetId(), ev.GetType(), ago(ev.GetReceiveTime()), dash(ev.GetIdempotencyKey()), dash(truncate(joinMap(ev.GetMetadata()), 40))}
			if payloads {
				text := fmt.Sprintf("(%s, %s)", plural(len(ev.GetPayload()), "byte", "bytes"), ev.GetContentType())
				if isText(ev.GetPayload()) {
					text = strings.Join(strings.Fields(string(ev.GetPayload())), " ")
				}
				row = append(row, truncate(text, 60))
			}
			t.row(row...)
		}
		if err := t.flush(); err != nil {
			return err
		}
		moreHint(cmd, next)
		return nil
	})
	c.addTenantFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&eventType, "type", "", `only events of this type, or matching a pattern such as "order.*"`)
	f.DurationVar(&since, "since", 0, "only events received this long ago or later, e.g. 1h (not with --start)")
	f.StringVar(&start, "start", "", "only events received at or after this time, RFC 3339")
	f.StringVar(&end, "end", "", "only events received before this time, RFC 3339")
	f.StringVar(&idemKey, "idempotency-key", "", "only the event published with this idempotency key")
	f.BoolVar(&payloads, "payloads", false, "include the payloads (a column in the table)")
	p.register(f, "events")
	return cmd
}
