package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
)

// mappedKiB returns the resident size of this process's mappings of path,
// from /proc/self/smaps.
func mappedKiB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps:", err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = strings.HasSuffix(line, path)
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			var kib int
			fmt.Sscanf(strings.TrimPrefix(line, "Rss:"), "%d", &kib)
			total += kib
		}
	}
	return total
}

// TestDropMappedPages: after the drop the file's pages are no longer
// resident in this process's mapping, and everything still reads the same.
func TestDropMappedPages(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	sub := ids.New(time.Now())
	for range 20 {
		var batch []*NewEvent
		for range 100 {
			ne := event("acme", time.Now(), sub)
			ne.Event.Payload = bytes.Repeat([]byte("x"), 1024)
			batch = append(batch, ne)
		}
		if err := s.Publish(ctx, "acme", batch); err != nil {
			t.Fatal(err)
		}
	}
	readAll := func() []byte {
		var all []byte
		if err := s.db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error {
					all = append(append(all, k...), v...)
					return nil
				})
			})
		}); err != nil {
			t.Fatal(err)
		}
		return all
	}
	before := readAll()
	if kib := mappedKiB(t, s.Path()); kib < 1024 {
		t.Fatalf("only %d KiB of the store mapped after reading 2 MB from it; the test measures nothing", kib)
	}
	if err := s.db.View(func(tx *bolt.Tx) error { return dropMapping(s.db.Info().Data, tx.Size()) }); err != nil {
		t.Fatal(err)
	}
	if kib := mappedKiB(t, s.Path()); kib > 64 {
		t.Errorf("%d KiB of the store still mapped after dropping", kib)
	}
	if after := readAll(); !bytes.Equal(before, after) {
		t.Fatal("the store reads differently after dropping its mapped pages")
	}
}
