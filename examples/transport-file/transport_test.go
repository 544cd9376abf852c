package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/sdk"
	"github.com/hookwire/hookwire/plugins/sdk/sdktest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func cfg(t *testing.T, fields map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(fields)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readLines decodes every line of a file the transport wrote.
func readLines(t *testing.T, path string) []line {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open output: %v", err)
	}
	defer f.Close()
	var out []line
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %d of %s is not JSON: %v: %q", len(out)+1, path, err, sc.Bytes())
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return out
}

// body returns the payload a line carries.
func (l line) body() []byte {
	if l.Body != nil {
		return []byte(*l.Body)
	}
	return l.BodyBase64
}

// fileTarget gives each check of the harness its own file in dir. The
// transport is synchronous, so what Deliver reported as SUCCESS is already
// in the file: Arrived reads it back without waiting.
func fileTarget(dir string) func(t *testing.T) sdktest.Receiver {
	var n atomic.Int32
	return func(t *testing.T) sdktest.Receiver {
		name := fmt.Sprintf("check-%d.jsonl", n.Add(1))
		return sdktest.Receiver{
			Config: cfg(t, map[string]any{"file": name}),
			Arrived: func(_ context.Context, want int) ([]sdktest.Delivery, error) {
				lines := readLines(t, filepath.Join(dir, name))
				if len(lines) < want {
					return nil, fmt.Errorf("%s has %d lines, want at least %d", name, len(lines), want)
				}
				out := make([]sdktest.Delivery, len(lines))
				for i, l := range lines {
					out[i] = sdktest.Delivery{Body: l.body(), Headers: l.Headers, ContentType: l.ContentType}
				}
				return out, nil
			},
		}
	}
}

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	sdktest.Run(t, func() sdk.Transport { return newTransport(dir) }, sdktest.Options{
		Target:        fileTarget(dir),
		InvalidConfig: cfg(t, map[string]any{"file": "../outside.jsonl"}),
	})
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "outside.jsonl")); err == nil {
		t.Error("a delivery with file ../outside.jsonl was written outside the directory")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		fields map[string]any
		want   string // substring of the only problem; "" for valid
	}{
		{"plain", map[string]any{"file": "orders.jsonl"}, ""},
		{"subdirectory", map[string]any{"file": "acme/orders.jsonl"}, ""},
		{"missing", map[string]any{}, "file is required"},
		{"not a string", map[string]any{"file": 7}, "file must be a string"},
		{"absolute", map[string]any{"file": "/etc/passwd"}, "relative path"},
		{"parent", map[string]any{"file": "../x"}, "relative path"},
		{"parent inside", map[string]any{"file": "a/../../x"}, "relative path"},
		{"empty", map[string]any{"file": ""}, "relative path"},
		{"unknown field", map[string]any{"file": "x", "mode": "0777"}, `unknown field "mode"`},
	}
	tr := newTransport(t.TempDir())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems, err := tr.Validate(context.Background(), cfg(t, tt.fields))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if len(problems) != 0 {
					t.Errorf("problems = %q, want none", problems)
				}
				return
			}
			if len(problems) != 1 || !strings.Contains(problems[0], tt.want) {
				t.Errorf("problems = %q, want one containing %q", problems, tt.want)
			}
		})
	}
}

func deliver(t *testing.T, tr *fileTransport, file string, body []byte) *transportv1.DeliveryResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return tr.Deliver(ctx, &transportv1.DeliveryRequest{
		Config:     cfg(t, map[string]any{"file": file}),
		Body:       body,
		DeliveryId: "dlv_1",
		Timeout:    durationpb.New(10 * time.Second),
	})
}

func TestBinaryBodyAndSubdirectory(t *testing.T) {
	dir := t.TempDir()
	tr := newTransport(dir)
	body := []byte{0xff, 0x00, 'h', 'i', 0xc3}
	if res := deliver(t, tr, "team/bin.jsonl", body); res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		t.Fatalf("deliver = %v %q", res.GetOutcome(), res.GetError())
	}
	lines := readLines(t, filepath.Join(dir, "team", "bin.jsonl"))
	if len(lines) != 1 || lines[0].Body != nil || !bytes.Equal(lines[0].BodyBase64, body) {
		t.Fatalf("lines = %+v, want the non-UTF-8 body in body_base64", lines)
	}
	fi, err := os.Stat(filepath.Join(dir, "team", "bin.jsonl"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("output file mode = %v, %v, want 0600", fi.Mode(), err)
	}
}

func TestRefusesToLeaveTheDirectory(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	tr := newTransport(dir)
	res := deliver(t, tr, "escape/x.jsonl", []byte("{}"))
	if res.GetOutcome() == transportv1.Outcome_OUTCOME_SUCCESS {
		t.Fatal("a delivery through a symbolic link leading outside the directory succeeded")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("files were written outside the directory: %v", entries)
	}
}

func TestWithoutDirectoryEveryDeliveryIsRejected(t *testing.T) {
	res := deliver(t, newTransport(""), "x.jsonl", []byte("{}"))
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_REJECTED || !strings.Contains(res.GetError(), envDir) {
		t.Errorf("deliver without a directory = %v %q, want REJECTED naming %s", res.GetOutcome(), res.GetError(), envDir)
	}
}
