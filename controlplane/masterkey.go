package controlplane

import (
	"context"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/secrets"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
)

// MasterKey encrypts the subscription signing keys at rest (AES-256-GCM).
// It is kept outside the database, in a file or an environment variable;
// printing it shows only its id.
type MasterKey = secrets.MasterKey

// MasterKeyEnv is the environment variable `hookwire server` reads the
// master key from when no --master-key-file is given.
const MasterKeyEnv = "HOOKWIRE_MASTER_KEY"

// LoadMasterKey reads a master key file (base64 of 32 random bytes, mode
// 0600) as written by GenerateMasterKeyFile or `hookwire keygen`.
func LoadMasterKey(path string) (*MasterKey, error) { return secrets.LoadMasterKey(path) }

// MasterKeyFromEnv reads a master key from the environment variable name.
func MasterKeyFromEnv(name string) (*MasterKey, error) { return secrets.MasterKeyFromEnv(name) }

// ParseMasterKey parses a master key in its text form (base64 of 32 bytes).
func ParseMasterKey(text string) (*MasterKey, error) { return secrets.ParseMasterKey(text) }

// GenerateMasterKeyFile writes a new random master key to path (mode 0600)
// and returns it; it refuses to overwrite an existing file.
func GenerateMasterKeyFile(path string) (*MasterKey, error) { return secrets.GenerateKeyFile(path) }

// resealBatch is how many subscriptions one re-seal transaction covers.
const resealBatch = 64

// resealLoop re-seals, in small batches, every signing key still sealed
// under a previous master key, then closes s.resealed. It runs at start
// when previous master keys are configured; until it is done the old keys
// stay readable, so nothing waits for it.
func (s *Server) resealLoop(ctx context.Context) {
	defer close(s.resealed)
	if len(s.cfg.PreviousMasterKeys) == 0 {
		return
	}
	log := s.cfg.Logger.With("master_key", s.keyring.CurrentID())
	log.Info("re-sealing signing keys under the current master key", "previous_master_keys", len(s.cfg.PreviousMasterKeys))
	var after []byte
	keys, records, batches := 0, 0, 0
	for {
		next, changed, err := s.store.UpdateSubscriptionBatch(ctx, after, resealBatch, func(rec *storev1.SubscriptionRecord) (bool, error) {
			n, err := catalog.ResealKeys(rec, s.keyring)
			keys += n
			return n > 0, err
		})
		if err != nil {
			if ctx.Err() == nil {
				s.resealErr = err
				log.Error("re-sealing signing keys stopped; keep the previous master keys configured and restart to resume", "err", err)
			}
			return
		}
		records += changed
		batches++
		if changed > 0 {
			log.Info("re-sealed signing keys", "subscriptions_so_far", records, "keys_so_far", keys)
		}
		if next == nil {
			break
		}
		after = next
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond): // leave room for API writes
		}
	}
	log.Info("master key rotation done: every signing key is sealed under the current master key; the previous master keys can be removed from the configuration",
		"subscriptions", records, "keys", keys, "batches", batches)
}

// MasterKeyRotationDone is closed when the start-up re-seal of signing
// keys under the current master key has finished (at once when no previous
// master keys are configured). MasterKeyRotationErr then tells whether it
// completed.
func (s *Server) MasterKeyRotationDone() <-chan struct{} { return s.resealed }

// MasterKeyRotationErr is why the re-seal stopped early, or nil. Read it
// after MasterKeyRotationDone is closed.
func (s *Server) MasterKeyRotationErr() error {
	select {
	case <-s.resealed:
		return s.resealErr
	default:
		return nil
	}
}
