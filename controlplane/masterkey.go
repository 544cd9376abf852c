package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/secrets"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	"github.com/prometheus/client_golang/prometheus"
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

// resealPause separates re-seal transactions, leaving the single writer to
// API writes in between.
const resealPause = 10 * time.Millisecond

// Why a re-seal pass ends without finishing.
var (
	errResealSuperseded = errors.New("superseded by a newer master key reload; that reload's re-seal covers every key")
	errResealShutdown   = errors.New("stopped by server shutdown before it finished; it starts again when the server starts with the previous master keys configured")
)

// masterKeys is the control plane's master keyring and the background
// re-seal of stored signing keys under its current key.
//
// The keyring lives in the API services (api.Services.SwapKeyring), which
// seal new keys under it. A reload swaps it there once no write sealing
// under the old one is in flight, then starts a re-seal pass; a pass runs
// in the one goroutine masterKeyLoop and gives way to a newer reload.
type masterKeys struct {
	mu   sync.Mutex
	ring *secrets.Keyring
	run  *resealRun // the latest pass (possibly finished)
	wake chan struct{}
	// Totals since start, for the metrics.
	resealedKeys, reloads int
}

// resealRun is one re-seal pass under one keyring.
type resealRun struct {
	ring      *secrets.Keyring
	done      chan struct{}
	finished  bool // done is closed; guarded by masterKeys.mu
	running   bool
	err       error
	subs      int // subscriptions changed so far
	keys      int // keys re-sealed so far
	started   time.Time
	completed time.Time
}

// initMasterKeys installs the start-up keyring, its re-seal pass (when
// previous master keys are configured) and the master-key metrics.
func (s *Server) initMasterKeys(ring *secrets.Keyring) {
	s.mk.ring = ring
	s.mk.wake = make(chan struct{}, 1)
	s.mk.run = s.newResealRun(ring)
	s.metrics.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hookwire_master_key_previous_keys",
			Help: "Previous master keys the keyring still holds; 0 once a rotation is done and they are dropped.",
		}, func() float64 { return float64(len(s.MasterKeyStatus().PreviousIDs)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hookwire_master_key_reseal_in_progress",
			Help: "1 while signing keys are being re-sealed under a new master key.",
		}, func() float64 {
			if s.MasterKeyStatus().Resealing {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "hookwire_master_key_resealed_keys_total",
			Help: "Signing keys, target header values and secret target config values re-sealed under a new master key since start.",
		}, func() float64 {
			s.mk.mu.Lock()
			defer s.mk.mu.Unlock()
			return float64(s.mk.resealedKeys)
		}),
	)
}

// newResealRun returns a pass for ring; with no previous keys there is
// nothing to re-seal and it is finished at once.
func (s *Server) newResealRun(ring *secrets.Keyring) *resealRun {
	run := &resealRun{ring: ring, done: make(chan struct{}), started: s.cfg.Now()}
	if len(ring.IDs()) == 1 {
		run.finished, run.completed = true, run.started
		close(run.done)
	}
	return run
}

// finish closes a pass with err (nil: every key is under its current key).
// Callers hold s.mk.mu.
func (s *Server) finishLocked(run *resealRun, err error) {
	if run.finished {
		return
	}
	run.finished, run.running, run.err, run.completed = true, false, err, s.cfg.Now()
	close(run.done)
}

// stopResealLocked ends the leader's work on run: at shutdown the pass
// ends with errResealShutdown; when only leadership ends it stays pending,
// and this server resumes it if it leads again (the new leader runs its
// own). It takes s.mk.mu.
func (s *Server) stopResealLocked(run *resealRun) {
	s.mk.mu.Lock()
	defer s.mk.mu.Unlock()
	if s.closing.Load() {
		s.finishLocked(run, errResealShutdown)
		return
	}
	run.running = false
}

// masterKeyLoop runs the re-seal passes: the start-up one, and one after
// every reload with previous keys. It stops with ctx.
func (s *Server) masterKeyLoop(ctx context.Context) {
	for {
		s.mk.mu.Lock()
		run := s.mk.run
		pending := !run.finished && !run.running
		if pending {
			run.running = true
		}
		s.mk.mu.Unlock()
		if pending {
			s.reseal(ctx, run)
		}
		select {
		case <-ctx.Done():
			s.stopResealLocked(s.mk.run)
			return
		case <-s.mk.wake:
		}
	}
}

// reseal re-seals, in small batches, every signing key still sealed under
// another master key than run's current one. Until it is done the
// previous keys stay readable, so nothing waits for it.
func (s *Server) reseal(ctx context.Context, run *resealRun) {
	log := s.cfg.Logger.With("master_key", run.ring.CurrentID())
	log.Info("re-sealing signing keys under the current master key", "previous_master_keys", len(run.ring.IDs())-1)
	var after []byte
	batches := 0
	for {
		s.mk.mu.Lock()
		superseded := s.mk.run != run
		s.mk.mu.Unlock()
		if superseded {
			log.Info("re-seal pass superseded by a newer master key reload")
			return
		}
		keys := 0
		next, changed, err := s.store.UpdateSubscriptionBatch(ctx, after, resealBatch, func(rec *storev1.SubscriptionRecord) (bool, error) {
			n, err := catalog.ResealKeys(rec, run.ring)
			keys += n
			return n > 0, err
		})
		s.mk.mu.Lock()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, store.ErrUnavailable) {
				// Leadership ended (or the store refuses writes for now):
				// the pass stays pending for this server's next term.
				s.mk.mu.Unlock()
				s.stopResealLocked(run)
				return
			} else {
				log.Error("re-sealing signing keys stopped; keep the previous master keys configured and reload (SIGHUP) or restart to resume", "err", err)
			}
			s.finishLocked(run, err)
			s.mk.mu.Unlock()
			return
		}
		run.subs += changed
		run.keys += keys
		s.mk.resealedKeys += keys
		subs, total := run.subs, run.keys
		s.mk.mu.Unlock()
		batches++
		if changed > 0 {
			log.Info("re-sealed signing keys", "subscriptions_so_far", subs, "keys_so_far", total)
		}
		if next == nil {
			break
		}
		after = next
		t := time.NewTimer(resealPause)
		select {
		case <-ctx.Done():
			t.Stop()
			s.stopResealLocked(run)
			return
		case <-t.C:
		}
	}
	s.mk.mu.Lock()
	s.finishLocked(run, nil)
	subs, total := run.subs, run.keys
	s.mk.mu.Unlock()
	log.Info("master key rotation done: every signing key is sealed under the current master key; the previous master keys can be removed from the configuration (then reload with SIGHUP)",
		"subscriptions", subs, "keys", total, "batches", batches)
}

// ReloadMasterKeys replaces the master keys while the server runs: new
// signing keys are sealed under current from now on, keys sealed under
// current or any of previous open, and a background pass re-seals every
// stored key still under another key (MasterKeyRotationDone tells when it
// is done). It refuses, changing nothing, a configuration that drops a
// master key some stored signing key is still sealed under. `hookwire
// server` calls it on SIGHUP.
func (s *Server) ReloadMasterKeys(current *MasterKey, previous ...*MasterKey) error {
	if current == nil {
		return errors.New("reload master keys: no current master key")
	}
	ring, err := secrets.NewKeyring(current, previous...)
	if err != nil {
		return fmt.Errorf("reload master keys: %w", err)
	}
	if err := s.svc.SwapKeyring(ring, s.checkKeyring); err != nil {
		return fmt.Errorf("reload master keys: %w", err)
	}
	s.mk.mu.Lock()
	old := s.mk.run
	s.finishLocked(old, errResealSuperseded)
	s.mk.ring = ring
	s.mk.run = s.newResealRun(ring)
	s.mk.reloads++
	s.mk.mu.Unlock()
	select {
	case s.mk.wake <- struct{}{}:
	default:
	}
	s.cfg.Logger.Info("master keys reloaded", "master_key", ring.CurrentID(), "previous_master_keys", strings.Join(ring.IDs()[1:], ","))
	return nil
}

// checkKeyring verifies that ring opens every stored signing key, so a
// reload cannot drop a master key still in use.
func (s *Server) checkKeyring(ring *secrets.Keyring) error {
	missing := map[string]int{}
	subs := 0
	err := s.store.AllSubscriptions(func(rec *storev1.SubscriptionRecord) error {
		sub := rec.GetSubscription()
		blocked := false
		for _, sk := range rec.GetSigningKeys() {
			raw, err := ring.Open(sk.GetSealedKey(), catalog.KeyAAD(sub.GetTenant(), sub.GetId(), sk.GetVersion(), sk.GetScheme()))
			clear(raw)
			if errors.Is(err, secrets.ErrUnknownKey) {
				missing[sealedUnder(sk.GetSealedKey())]++
				blocked = true
			}
		}
		// Target header values and secret target configuration values are
		// sealed the same way (catalog/headers.go, catalog/config.go).
		catalog.CheckTargetKeys(rec, ring, func(sealed []byte, err error) {
			if errors.Is(err, secrets.ErrUnknownKey) {
				missing[sealedUnder(sealed)]++
				blocked = true
			}
		})
		if blocked {
			subs++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check stored signing keys: %w", err)
	}
	if len(missing) == 0 {
		return nil
	}
	ids := make([]string, 0, len(missing))
	n := 0
	for id, c := range missing {
		ids = append(ids, id)
		n += c
	}
	sort.Strings(ids)
	return fmt.Errorf("%d signing keys, header values or secret target config values of %d subscriptions are still sealed under master key %s, which the new configuration does not hold; keep it as --previous-master-key-file until the log reports \"master key rotation done\"; the current keys are unchanged",
		n, subs, strings.Join(ids, ", "))
}

// sealedUnder is the id of the master key a sealed value names (see
// package secrets for the format).
func sealedUnder(sealed []byte) string {
	if len(sealed) < 5 {
		return "(malformed)"
	}
	return fmt.Sprintf("%x", sealed[1:5])
}

// MasterKeyStatus describes the master keys and the re-seal progress.
type MasterKeyStatus struct {
	// CurrentID seals new signing keys; PreviousIDs are still readable.
	CurrentID   string   `json:"current_id"`
	PreviousIDs []string `json:"previous_ids"`
	// Resealing is true while stored keys are being re-sealed under the
	// current master key.
	Resealing bool `json:"resealing"`
	// Done: the latest pass finished and every stored signing key is
	// sealed under the current key; PreviousIDs may be dropped.
	Done bool `json:"done"`
	// Subscriptions and Keys the latest pass has re-sealed so far.
	Subscriptions int `json:"resealed_subscriptions"`
	Keys          int `json:"resealed_keys"`
	// Error is why the latest pass stopped early.
	Error string `json:"error,omitempty"`
	// Reloads counts ReloadMasterKeys calls since start.
	Reloads int `json:"reloads"`
}

// MasterKeyStatus reports the master keys in use and the re-seal progress.
func (s *Server) MasterKeyStatus() MasterKeyStatus {
	s.mk.mu.Lock()
	defer s.mk.mu.Unlock()
	run := s.mk.run
	st := MasterKeyStatus{
		CurrentID: s.mk.ring.CurrentID(), PreviousIDs: slices.Clone(s.mk.ring.IDs()[1:]),
		Resealing: !run.finished, Done: run.finished && run.err == nil,
		Subscriptions: run.subs, Keys: run.keys, Reloads: s.mk.reloads,
	}
	if run.err != nil {
		st.Error = run.err.Error()
	}
	return st
}

// serveMasterKeyStatus answers GET /healthz/master-key on the admin
// listener with MasterKeyStatus as JSON (key ids only, never keys).
func (s *Server) serveMasterKeyStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.MasterKeyStatus())
}

// MasterKeyRotationDone is closed when the latest re-seal of signing keys
// under the current master key has ended: at start (at once when no
// previous master keys are configured) or after ReloadMasterKeys.
// MasterKeyRotationErr then tells whether it completed.
func (s *Server) MasterKeyRotationDone() <-chan struct{} {
	s.mk.mu.Lock()
	defer s.mk.mu.Unlock()
	return s.mk.run.done
}

// MasterKeyRotationErr is why the latest re-seal stopped early, or nil.
// Read it after MasterKeyRotationDone is closed.
func (s *Server) MasterKeyRotationErr() error {
	s.mk.mu.Lock()
	defer s.mk.mu.Unlock()
	if !s.mk.run.finished {
		return nil
	}
	return s.mk.run.err
}
