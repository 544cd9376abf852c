package store

import (
	"context"
	"testing"
	"time"

	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// GetAPIKey answers from its cache while only publishes run, and sees a
// revoke as soon as RevokeAPIKey returns; a read that raced a key change
// is not cached.
func TestAPIKeyCacheSeesEveryKeyChange(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	key := &hookwirev1.ApiKey{Id: "key_a", Tenant: "acme"}
	if err := s.PutAPIKey(ctx, &storev1.ApiKeyRecord{ApiKey: key, Hash: []byte("h")}, nil); err != nil {
		t.Fatal(err)
	}
	first, err := s.GetAPIKey("key_a")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, "acme", []*NewEvent{event("acme", time.Now())}); err != nil {
		t.Fatal(err)
	}
	if again, err := s.GetAPIKey("key_a"); err != nil || again != first {
		t.Fatalf("after a publish: %p %v, want the cached record %p", again, err, first)
	}

	if err := s.RevokeAPIKey(ctx, "acme", "key_a", nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAPIKey("key_a")
	if err != nil || !got.GetApiKey().GetRevoked() {
		t.Fatalf("right after the revoke: %v, %v; want the revoked record", got, err)
	}

	// A record read before an invalidation is not put in the cache.
	_, gen := s.keys.get("key_b")
	s.keys.invalidate()
	s.keys.put("key_b", first, gen)
	if rec, _ := s.keys.get("key_b"); rec != nil {
		t.Fatal("a record read before the cache was emptied was cached")
	}
}
