package api

import (
	"sync"

	"github.com/hookwire/hookwire/controlplane/internal/secrets"
)

// keyringHolder holds the master keyring, which an online master-key
// rotation swaps. Writes that seal a new signing key hold it for reading
// from the seal until their store write is durable, so a swap waits for
// them: once SwapKeyring returns, nothing is sealed under the old current
// key any more, and a re-seal pass started afterwards sees every key.
type keyringHolder struct {
	mu   sync.RWMutex
	ring *secrets.Keyring
}

// keys returns the keyring for opening sealed keys.
func (s *Services) keys() *secrets.Keyring {
	s.keyring.mu.RLock()
	defer s.keyring.mu.RUnlock()
	return s.keyring.ring
}

// sealing returns the keyring for sealing new keys; release must be
// called once the write holding the sealed keys is done.
func (s *Services) sealing() (ring *secrets.Keyring, release func()) {
	s.keyring.mu.RLock()
	return s.keyring.ring, s.keyring.mu.RUnlock
}

// SwapKeyring replaces the master keyring once no write sealing under the
// old one is in flight. check, if not nil, runs first with the new keyring
// while no seal can start; its error aborts the swap.
func (s *Services) SwapKeyring(ring *secrets.Keyring, check func(*secrets.Keyring) error) error {
	s.keyring.mu.Lock()
	defer s.keyring.mu.Unlock()
	if check != nil {
		if err := check(ring); err != nil {
			return err
		}
	}
	s.keyring.ring = ring
	return nil
}
