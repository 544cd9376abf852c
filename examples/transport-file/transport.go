package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/sdk"
)

const (
	// name is the transport name subscriptions use.
	name = "file"
	// version is this plugin's release version.
	version = "0.1.0"
	// envDir names the directory every target file lives in.
	envDir = "HOOKWIRE_FILE_TRANSPORT_DIR"
)

const targetSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Hookwire file target",
  "type": "object",
  "properties": {
    "file": {
      "type": "string",
      "description": "File to append deliveries to, one JSON line each: a relative path inside the directory the agent's HOOKWIRE_FILE_TRANSPORT_DIR names."
    }
  },
  "required": ["file"],
  "additionalProperties": false
}`

// configFields describes the one field, which is no secret. A transport
// whose configuration carries a credential marks that property
// "writeOnly": true in its schema, and the control plane seals it.
var configFields = sdk.MustConfigFields(targetSchema)

// fileTransport appends deliveries to files under one directory.
type fileTransport struct {
	dir     string
	root    *os.Root // nil when rootErr says why
	rootErr error
	now     func() time.Time

	mu    sync.Mutex
	locks map[string]*sync.Mutex // one per target file: whole lines, in order
}

var _ sdk.Transport = (*fileTransport)(nil)

// newTransport returns a transport writing under dir, which it creates if
// needed. Problems with dir are reported by every Deliver.
func newTransport(dir string) *fileTransport {
	t := &fileTransport{dir: dir, now: time.Now, locks: make(map[string]*sync.Mutex)}
	switch {
	case dir == "":
		t.rootErr = fmt.Errorf("the file transport has no output directory: set %s in the agent's environment", envDir)
	default:
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.rootErr = fmt.Errorf("create the output directory %s (%s): %w", dir, envDir, err)
			break
		}
		t.root, t.rootErr = os.OpenRoot(dir)
	}
	return t
}

// Describe reports the transport's identity.
func (t *fileTransport) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: name, Version: version, APIVersions: []uint32{sdk.APIVersion}, TargetSchema: targetSchema, ConfigFields: configFields}, nil
}

// Validate checks a file target configuration.
func (t *fileTransport) Validate(_ context.Context, cfg *structpb.Struct) ([]string, error) {
	_, problems := parseConfig(cfg)
	return problems, nil
}

// parseConfig returns the target file's name inside the directory, or the
// problems with cfg.
func parseConfig(cfg *structpb.Struct) (string, []string) {
	var problems []string
	for field := range cfg.GetFields() {
		if field != "file" {
			problems = append(problems, fmt.Sprintf("unknown field %q: the file transport accepts only file", field))
		}
	}
	slices.Sort(problems)
	v, ok := cfg.GetFields()["file"]
	if !ok {
		return "", append(problems, `file is required, e.g. "orders.jsonl"`)
	}
	s, isString := v.GetKind().(*structpb.Value_StringValue)
	switch {
	case !isString:
		problems = append(problems, "file must be a string")
	case !filepath.IsLocal(s.StringValue):
		problems = append(problems, fmt.Sprintf("file %q must be a relative path inside the agent's output directory, without \"..\"", s.StringValue))
	}
	if len(problems) > 0 {
		return "", problems
	}
	return filepath.Clean(s.StringValue), nil
}

// line is one delivery as written.
type line struct {
	DeliveryID  string            `json:"delivery_id"`
	EventType   string            `json:"event_type,omitempty"`
	ContentType string            `json:"content_type,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Body        *string           `json:"body,omitempty"`
	BodyBase64  []byte            `json:"body_base64,omitempty"`
	WrittenAt   time.Time         `json:"written_at"`
}

// Deliver appends the delivery to its file and fsyncs it.
func (t *fileTransport) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	file, problems := parseConfig(req.GetConfig())
	if len(problems) > 0 {
		return result(transportv1.Outcome_OUTCOME_REJECTED, "invalid file target configuration: %v", problems)
	}
	if t.rootErr != nil {
		return result(transportv1.Outcome_OUTCOME_REJECTED, "%v", t.rootErr)
	}

	l := line{
		DeliveryID:  req.GetDeliveryId(),
		EventType:   req.GetEventType(),
		ContentType: req.GetContentType(),
		Headers:     req.GetHeaders(),
		WrittenAt:   t.now().UTC(),
	}
	if b := req.GetBody(); utf8.Valid(b) {
		s := string(b)
		l.Body = &s
	} else {
		l.BodyBase64 = b
	}
	data, err := json.Marshal(l)
	if err != nil {
		return result(transportv1.Outcome_OUTCOME_FAILED, "encode the delivery: %v", err)
	}
	data = append(data, '\n')

	lock := t.lock(file)
	lock.Lock()
	defer lock.Unlock()
	// Waiting for the lock may have used up the attempt's time: the host
	// has then counted the attempt as timed out, and writing would make a
	// duplicate.
	if err := ctx.Err(); err != nil {
		return canceled(err)
	}
	start := t.now()
	if err := t.appendLine(file, data); err != nil {
		return result(transportv1.Outcome_OUTCOME_CONNECTION_ERROR, "append to %s: %v", filepath.Join(t.dir, file), err)
	}
	res := result(transportv1.Outcome_OUTCOME_SUCCESS, "")
	res.Latency = durationpb.New(t.now().Sub(start))
	return res
}

// appendLine writes data at the end of file and fsyncs it; on failure it
// truncates the file back, so no partial line is left. The caller holds
// the file's lock.
func (t *fileTransport) appendLine(file string, data []byte) (err error) {
	if dir := filepath.Dir(file); dir != "." {
		if err := t.root.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	f, err := t.root.OpenFile(file, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return errors.Join(err, f.Truncate(end))
	}
	if err := f.Sync(); err != nil {
		return errors.Join(err, f.Truncate(end))
	}
	return nil
}

func (t *fileTransport) lock(file string) *sync.Mutex {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.locks[file]
	if !ok {
		l = &sync.Mutex{}
		t.locks[file] = l
	}
	return l
}

func result(o transportv1.Outcome, format string, args ...any) *transportv1.DeliveryResult {
	res := &transportv1.DeliveryResult{Outcome: o}
	if format != "" {
		res.Error = fmt.Sprintf(format, args...)
	}
	return res
}

func canceled(err error) *transportv1.DeliveryResult {
	if errors.Is(err, context.DeadlineExceeded) {
		return result(transportv1.Outcome_OUTCOME_TIMEOUT, "the attempt's deadline passed before the file was free to write: %v", err)
	}
	return result(transportv1.Outcome_OUTCOME_CONNECTION_ERROR, "the attempt was cancelled before it was written: %v", err)
}
