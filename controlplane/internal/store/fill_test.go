package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// TestPendingDeliverySize bounds the file bytes per pending delivery (one
// event with a 256-byte payload and one delivery each): the append-only
// buckets must fill their pages (mapping.go), not leave half of each empty.
func TestPendingDeliverySize(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	start := s.Size()
	sub := ids.New(time.Now())
	const n = 20000
	for range n / 500 {
		batch := make([]*NewEvent, 500)
		for i := range batch {
			batch[i] = event("acme", time.Now(), sub)
			batch[i].Event.Payload = []byte(`{"seq":1,"pad":"` + strings.Repeat("x", 240) + `"}`)
		}
		if err := s.Publish(ctx, "acme", batch); err != nil {
			t.Fatal(err)
		}
	}
	per := float64(s.Size()-start) / n
	t.Logf("%.0f bytes per pending delivery", per)
	if per > 1000 {
		t.Errorf("%.0f bytes per pending delivery, want at most 1000", per)
	}
}
