// Package secrets encrypts secrets at rest (subscription signing keys) under
// a master key held outside the database.
//
// # Format
//
// Seal returns
//
//	version (1 byte, 0x01) | key id (4 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext and tag
//
// The nonce is random for every seal. The version byte and key id are
// authenticated together with the caller's associated data (AAD), which
// should name the record the secret belongs to (e.g. the subscription id
// and key version), so a sealed value copied into another record does not
// open there.
//
// # Master keys
//
// A master key is 32 random bytes, kept base64-encoded in a file (see
// GenerateKeyFile, LoadMasterKey) or an environment variable (ParseMasterKey,
// MasterKeyFromEnv). Its id is the first 4 bytes of HMAC-SHA256(key,
// "hookwire secrets key id v1"), shown in hex; the AES key is derived from
// it with HKDF-SHA256, so the master key itself is never used directly.
//
// # Rotating the master key
//
//  1. Generate a new key file and restart with it as the current key and
//     the old one as a previous key (NewKeyring(current, previous)).
//     New seals use the new key; old ciphertexts still open.
//  2. Re-seal every stored secret for which NeedsRotation reports true
//     (Reseal does open-and-seal in one step).
//  3. When none is left, drop the previous key.
//
// With random 96-bit nonces one master key should seal fewer than 2^32
// values; rotate well before that.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// KeySize is the length of a master key in bytes.
const KeySize = 32

const (
	formatVersion = 0x01
	keyIDSize     = 4
	nonceSize     = 12
	tagSize       = 16
	headerSize    = 1 + keyIDSize
	// Overhead is how many bytes Seal adds to the plaintext.
	Overhead = headerSize + nonceSize + tagSize
)

// Errors returned by Open, wrapped with details; test with errors.Is.
var (
	// ErrMalformed means the input is not a sealed value of a known format.
	ErrMalformed = errors.New("sealed secret is malformed")
	// ErrUnknownKey means the value was sealed under a master key the
	// keyring does not hold.
	ErrUnknownKey = errors.New("sealed secret uses an unknown master key")
	// ErrAuthentication means decryption failed: the value was altered, or
	// the associated data differs from the one it was sealed with.
	ErrAuthentication = errors.New("sealed secret does not authenticate")
)

// MasterKey is one master key, ready to seal and open. It does not keep
// the raw key bytes; printing it shows only its id.
type MasterKey struct {
	id   [keyIDSize]byte
	aead cipher.AEAD
}

// NewMasterKey returns the master key for 32 raw bytes.
func NewMasterKey(raw []byte) (*MasterKey, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("master key must be %d bytes, got %d", KeySize, len(raw))
	}
	k := &MasterKey{}
	mac := hmac.New(sha256.New, raw)
	mac.Write([]byte("hookwire secrets key id v1"))
	copy(k.id[:], mac.Sum(nil))
	encKey, err := hkdf.Key(sha256.New, raw, nil, "hookwire secrets aes-256-gcm v1", 32)
	if err != nil {
		return nil, fmt.Errorf("derive master encryption key: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("master key cipher: %w", err)
	}
	if k.aead, err = cipher.NewGCM(block); err != nil {
		return nil, fmt.Errorf("master key cipher: %w", err)
	}
	return k, nil
}

// ID returns the key's short id in hex (8 characters), as recorded in every
// value it seals.
func (k *MasterKey) ID() string { return hex.EncodeToString(k.id[:]) }

// String describes the key by its id only.
func (k *MasterKey) String() string { return "secrets.MasterKey{id " + k.ID() + "}" }

// Format prints String for every verb, so fmt never dumps cipher state.
func (k *MasterKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// Keyring seals under its current master key and opens values sealed under
// the current or any previous key. It is immutable and safe for concurrent
// use.
type Keyring struct {
	current *MasterKey
	keys    []*MasterKey // current first
}

// NewKeyring returns a keyring sealing under current and also opening
// values sealed under the previous keys (during a master-key rotation).
func NewKeyring(current *MasterKey, previous ...*MasterKey) (*Keyring, error) {
	if current == nil {
		return nil, errors.New("keyring needs a current master key")
	}
	r := &Keyring{current: current, keys: []*MasterKey{current}}
	for i, p := range previous {
		if p == nil {
			return nil, fmt.Errorf("previous master key %d is nil", i+1)
		}
		if k := r.key(p.id); k != nil {
			if k == current {
				return nil, fmt.Errorf("previous master key %d (id %s) is the current key; drop it from the previous keys", i+1, p.ID())
			}
			return nil, fmt.Errorf("previous master key %d (id %s) is given twice", i+1, p.ID())
		}
		r.keys = append(r.keys, p)
	}
	return r, nil
}

// CurrentID returns the id of the key new values are sealed under.
func (r *Keyring) CurrentID() string { return r.current.ID() }

// IDs returns the ids of all keys in the ring, current first.
func (r *Keyring) IDs() []string {
	ids := make([]string, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.ID()
	}
	return ids
}

// String describes the keyring by its key ids.
func (r *Keyring) String() string {
	return "secrets.Keyring{current " + r.CurrentID() + ", keys " + strings.Join(r.IDs(), ",") + "}"
}

// Format prints String for every verb.
func (r *Keyring) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(r.String())) }

func (r *Keyring) key(id [keyIDSize]byte) *MasterKey {
	for _, k := range r.keys {
		if k.id == id {
			return k
		}
	}
	return nil
}

// Seal encrypts plaintext under the current master key. aad (associated
// data) is authenticated but not stored: Open needs the same aad. Use it
// to bind the value to its record, e.g. "sub_123/key/2".
func (r *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	k := r.current
	out := make([]byte, headerSize+nonceSize, Overhead+len(plaintext))
	out[0] = formatVersion
	copy(out[1:headerSize], k.id[:])
	if _, err := rand.Read(out[headerSize:]); err != nil {
		return nil, fmt.Errorf("seal secret: read random nonce: %w", err)
	}
	return k.aead.Seal(out, out[headerSize:], plaintext, additionalData(out[:headerSize], aad)), nil
}

// Open decrypts a value made by Seal, under whichever key of the ring
// sealed it. aad must equal the aad given to Seal.
func (r *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	if err := checkFormat(sealed); err != nil {
		return nil, err
	}
	var id [keyIDSize]byte
	copy(id[:], sealed[1:headerSize])
	k := r.key(id)
	if k == nil {
		return nil, fmt.Errorf("%w: sealed under master key %s, but the keyring holds %s: start with the previous master key configured as well", ErrUnknownKey, hex.EncodeToString(id[:]), strings.Join(r.IDs(), ", "))
	}
	nonce := sealed[headerSize : headerSize+nonceSize]
	plain, err := k.aead.Open(nil, nonce, sealed[headerSize+nonceSize:], additionalData(sealed[:headerSize], aad))
	if err != nil {
		return nil, fmt.Errorf("%w under master key %s: it was altered, or opened with other associated data than it was sealed with (was it copied from another record?)", ErrAuthentication, k.ID())
	}
	return plain, nil
}

// NeedsRotation reports whether a sealed value is under a key other than
// the current one (a previous key, or one the ring does not know), so it
// should be re-sealed. It is false for malformed input, which Open refuses
// anyway.
func (r *Keyring) NeedsRotation(sealed []byte) bool {
	if checkFormat(sealed) != nil {
		return false
	}
	return !hmac.Equal(sealed[1:headerSize], r.current.id[:])
}

// Reseal opens a sealed value and seals it again under the current key,
// with the same aad. It returns the input unchanged (not a copy) when it
// is already under the current key.
func (r *Keyring) Reseal(sealed, aad []byte) ([]byte, error) {
	plain, err := r.Open(sealed, aad)
	if err != nil {
		return nil, err
	}
	if !r.NeedsRotation(sealed) {
		return sealed, nil
	}
	return r.Seal(plain, aad)
}

func checkFormat(sealed []byte) error {
	if len(sealed) < Overhead {
		return fmt.Errorf("%w: %d bytes, shorter than the %d-byte minimum (truncated, or not made by Seal)", ErrMalformed, len(sealed), Overhead)
	}
	if sealed[0] != formatVersion {
		return fmt.Errorf("%w: format version %d, want %d (not made by Seal, or by a newer Hookwire)", ErrMalformed, sealed[0], formatVersion)
	}
	return nil
}

// additionalData authenticates the header along with the caller's aad. The
// header has a fixed length, so the concatenation is unambiguous.
func additionalData(header, aad []byte) []byte {
	return slices.Concat(header, aad)
}
