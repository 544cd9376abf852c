package main

// Output of the client commands: aligned tables and key/value views for
// people, JSON (protojson, proto field names) and YAML for scripts.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var protoJSON = protojson.MarshalOptions{UseProtoNames: true}

// table is a tabwriter with a header row.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

// cellSpaces replaces tabs and newlines, which would break the alignment.
var cellSpaces = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")

func (t *table) row(cells ...string) {
	for i, c := range cells {
		cells[i] = cellSpaces.Replace(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// fields prints "Name:  value" lines, aligned; empty values are skipped.
type fields struct {
	t *table
}

func newFields(w io.Writer) *fields { return &fields{t: newTable(w)} }

func (f *fields) add(name, value string) {
	if value == "" {
		return
	}
	f.t.row(name+":", value)
}

func (f *fields) flush() error { return f.t.flush() }

// emit prints one message: protojson for json/yaml, human() for tables.
func (c *cli) emit(cmd *cobra.Command, msg proto.Message, human func(w io.Writer) error) error {
	if c.output == "table" {
		return human(cmd.OutOrStdout())
	}
	data, err := protoJSON.Marshal(msg)
	if err != nil {
		return err
	}
	return writeDoc(cmd.OutOrStdout(), c.output, data)
}

// emitList prints a list as one document, {"<field>": [...], "next_page_token": "..."}
// (the API's list response shape; the list is always present, possibly
// empty), or as a table.
func emitList[T proto.Message](c *cli, cmd *cobra.Command, field string, items []T, next string, human func(w io.Writer) error) error {
	if c.output == "table" {
		return human(cmd.OutOrStdout())
	}
	var b bytes.Buffer
	b.WriteString(`{"` + field + `":[`)
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		data, err := protoJSON.Marshal(it)
		if err != nil {
			return err
		}
		b.Write(data)
	}
	b.WriteString("]")
	if next != "" {
		tok, _ := json.Marshal(next)
		b.WriteString(`,"next_page_token":`)
		b.Write(tok)
	}
	b.WriteString("}")
	return writeDoc(cmd.OutOrStdout(), c.output, b.Bytes())
}

// writeValue prints a plain Go value as json or yaml.
func writeValue(w io.Writer, format string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeDoc(w, format, data)
}

// writeDoc prints a JSON document indented, or converted to YAML with the
// key order kept.
func writeDoc(w io.Writer, format string, data []byte) error {
	if format == "yaml" {
		out, err := jsonToYAML(data)
		if err != nil {
			return err
		}
		_, err = w.Write(out)
		return err
	}
	var b bytes.Buffer
	if err := json.Indent(&b, data, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// jsonToYAML converts through a yaml.Node (JSON is YAML), so key order
// survives; the flow style of JSON is switched to block style.
func jsonToYAML(data []byte) ([]byte, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return nil, err
	}
	blockStyle(&n)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func blockStyle(n *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		n.Style = 0
	case yaml.ScalarNode:
		// The encoder quotes strings that need it ("true", "123").
		n.Style = 0
	}
	for _, child := range n.Content {
		blockStyle(child)
	}
}

// --- values for people ---

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// enumLabel turns DELIVERY_STATUS_SUCCEEDED into "succeeded".
func enumLabel(name, prefix string) string {
	s := strings.TrimPrefix(name, prefix)
	if s == "UNSPECIFIED" || s == "" {
		return "-"
	}
	return strings.ReplaceAll(strings.ToLower(s), "_", "-")
}

// ago is a relative time for tables: "12s ago", "in 4m", "-" when unset.
func ago(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return relative(ts.AsTime(), time.Now())
}

func relative(t, now time.Time) string {
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh", int(d/time.Hour))
	case d < 60*24*time.Hour:
		s = fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	default:
		return t.Local().Format("2006-01-02")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// stamp is an absolute time with the relative one, for single-object views.
func stamp(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	t := ts.AsTime()
	return t.Local().Format(time.RFC3339) + " (" + relative(t, time.Now()) + ")"
}

func duration(d *durationpb.Duration) string {
	if d == nil {
		return ""
	}
	return d.AsDuration().String()
}

// latency rounds for a table: 12ms, 1.2s.
func latency(d *durationpb.Duration) string {
	if d == nil {
		return "-"
	}
	x := d.AsDuration()
	switch {
	case x < time.Millisecond:
		return x.Round(time.Microsecond).String()
	case x < time.Second:
		return x.Round(time.Millisecond).String()
	}
	return x.Round(10 * time.Millisecond).String()
}

func joinMap(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ", ")
}

// truncate shortens s to n runes with an ellipsis.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// warnSecret tells people on stderr that a value is shown only once.
func warnSecret(cmd *cobra.Command, what string) {
	fmt.Fprintf(cmd.ErrOrStderr(), "warning: this is the only time the %s is shown; store it now (e.g. in your secret manager)\n", what)
}
