package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// fsizeChildEnv marks the test binary re-run by TestKernelWriteErrorRecovers.
const fsizeChildEnv = "HOOKWIRE_STORE_FSIZE_CHILD"

// TestKernelWriteErrorRecovers makes the kernel refuse the store's writes
// for real: a child process lowers its file-size limit (RLIMIT_FSIZE) to
// the store file's size, so growing the file fails with EFBIG inside
// bbolt's commit, as a full disk fails with ENOSPC. The child then lifts
// the limit and checks the store recovers by itself and that exactly the
// acknowledged writes are in the file. The limit is process-wide, hence
// the child.
func TestKernelWriteErrorRecovers(t *testing.T) {
	if os.Getenv(fsizeChildEnv) != "" {
		t.Skip("this is the child")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileSizeLimitChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), fsizeChildEnv+"="+t.TempDir())
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFileSizeLimitChild") {
		t.Fatalf("child failed: %v", err)
	}
}

func TestFileSizeLimitChild(t *testing.T) {
	dir := os.Getenv(fsizeChildEnv)
	if dir == "" {
		t.Skip("run by TestKernelWriteErrorRecovers")
	}
	signal.Ignore(syscall.SIGXFSZ) // EFBIG instead of being killed
	s := openWith(t, dir, Options{RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond})
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	sub := ids.New(time.Now())
	publish := func() (*NewEvent, error) {
		ne := event("acme", time.Now(), sub)
		ne.Event.Payload = []byte(`{"pad":"` + strings.Repeat("x", 8<<10) + `"}`)
		return ne, s.Publish(ctx, "acme", []*NewEvent{ne})
	}
	var acked, refused []ids.ID
	info, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skip("no RLIMIT_FSIZE:", err)
	}
	low := lim
	low.Cur = uint64(info.Size()) + 256<<10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &low); err != nil {
		t.Skip("cannot lower RLIMIT_FSIZE:", err)
	}
	var failure error
	for range 10000 {
		ne, err := publish()
		if err != nil {
			failure = err
			refused = append(refused, ne.ID)
			break
		}
		acked = append(acked, ne.ID)
	}
	if !errors.Is(failure, ErrUnavailable) || !strings.Contains(failure.Error(), "file too large") {
		t.Fatalf("publish past the file-size limit: %v, want ErrUnavailable naming EFBIG", failure)
	}
	if ok, reason, _ := s.Writable(); ok {
		t.Fatalf("Writable() = true after a failed commit (reason %v)", reason)
	}
	// Retries keep failing while the limit holds, and writes fail at once.
	pollUntil(t, "two failed retries", func() bool { return s.Stats().Failures >= 3 })
	if ne, err := publish(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("publish while the limit holds: %v", err)
	} else {
		refused = append(refused, ne.ID)
	}
	if ok, _, _ := s.Writable(); ok {
		t.Fatal("writable while the limit still holds")
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	awaitWritable(t, s, true)
	for range 5 {
		ne, err := publish()
		if err != nil {
			t.Fatalf("publish after the limit was lifted: %v", err)
		}
		acked = append(acked, ne.ID)
	}
	failures := s.Stats().Failures
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	evs, err := s.GetEvents(append(append([]ids.ID{}, acked...), refused...))
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if want := i < len(acked); (ev != nil) != want {
			t.Errorf("event %d present=%v after reopening, want %v (acknowledged %d, refused %d)", i, ev != nil, want, len(acked), len(refused))
		}
	}
	fmt.Printf("acknowledged %d, refused %d, failed commits %d\n", len(acked), len(refused), failures)
}
