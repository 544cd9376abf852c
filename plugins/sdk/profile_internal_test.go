package sdk

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
)

type namedTransport struct{ name string }

func (n namedTransport) Describe(context.Context) (Info, error) { return Info{Name: n.name}, nil }
func (namedTransport) Validate(context.Context, *structpb.Struct) ([]string, error) {
	return nil, nil
}
func (namedTransport) Deliver(context.Context, *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	return &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_SUCCESS}
}

// TestCPUProfileEnv checks that HOOKWIRE_PLUGIN_CPUPROFILE makes the plugin
// write a (gzipped protobuf) CPU profile named after the transport, and
// that without it nothing is written.
func TestCPUProfileEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(CPUProfileEnv, "")
	startCPUProfile(namedTransport{"file"}, os.Stderr)() // off: a no-op
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("profile written without %s: %v", CPUProfileEnv, entries)
	}

	t.Setenv(CPUProfileEnv, dir)
	stop := startCPUProfile(namedTransport{"file"}, os.Stderr)
	stop()
	stop() // idempotent
	want := filepath.Join(dir, fmt.Sprintf("file-%d.cpu.pprof", os.Getpid()))
	data, err := os.ReadFile(want)
	if err != nil {
		t.Fatalf("no profile at %s: %v", want, err)
	}
	if !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		t.Errorf("%s is not a gzipped pprof profile (%d bytes)", want, len(data))
	}

	// A directory that does not exist is reported, not fatal.
	t.Setenv(CPUProfileEnv, filepath.Join(dir, "missing"))
	startCPUProfile(namedTransport{"file"}, os.Stderr)()
}
