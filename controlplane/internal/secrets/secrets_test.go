package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func newKey(t testing.TB, fill byte) *MasterKey {
	t.Helper()
	k, err := NewMasterKey(bytes.Repeat([]byte{fill}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newRing(t testing.TB, current *MasterKey, previous ...*MasterKey) *Keyring {
	t.Helper()
	r, err := NewKeyring(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSealOpenRoundTrip(t *testing.T) {
	r := newRing(t, newKey(t, 1))
	for _, plain := range [][]byte{nil, {}, []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), bytes.Repeat([]byte{0xAB}, 4096)} {
		aad := []byte("sub_01ABC/key/1")
		sealed, err := r.Seal(plain, aad)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != len(plain)+Overhead {
			t.Errorf("sealed %d bytes of plaintext into %d, want %d", len(plain), len(sealed), len(plain)+Overhead)
		}
		if sealed[0] != formatVersion || !bytes.Equal(sealed[1:5], r.current.id[:]) {
			t.Errorf("header % x, want version 1 and key id %s", sealed[:5], r.CurrentID())
		}
		if len(plain) > 8 && bytes.Contains(sealed, plain[:8]) {
			t.Error("sealed value contains the plaintext")
		}
		got, err := r.Open(sealed, aad)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("Open = %q, want %q", got, plain)
		}
		if r.NeedsRotation(sealed) {
			t.Error("NeedsRotation true for a value under the current key")
		}
	}
	// Random nonces: the same plaintext seals differently every time.
	a, _ := r.Seal([]byte("same"), nil)
	b, _ := r.Seal([]byte("same"), nil)
	if bytes.Equal(a, b) || bytes.Equal(a[5:17], b[5:17]) {
		t.Error("two seals of the same plaintext share a nonce")
	}
}

func TestOpenWrongAAD(t *testing.T) {
	r := newRing(t, newKey(t, 1))
	sealed, _ := r.Seal([]byte("signing key"), []byte("sub_A/key/1"))
	for _, aad := range [][]byte{[]byte("sub_B/key/1"), []byte("sub_A/key/2"), nil, []byte("sub_A/key/1 ")} {
		_, err := r.Open(sealed, aad)
		if !errors.Is(err, ErrAuthentication) || !strings.Contains(err.Error(), "associated data") {
			t.Errorf("Open with aad %q: %v, want ErrAuthentication naming associated data", aad, err)
		}
	}
}

func TestOpenTampered(t *testing.T) {
	r := newRing(t, newKey(t, 1))
	sealed, _ := r.Seal([]byte("signing key"), []byte("aad"))
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x80
		_, err := r.Open(bad, []byte("aad"))
		switch {
		case i == 0:
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("flipped version byte: %v, want ErrMalformed", err)
			}
		case i < headerSize:
			if !errors.Is(err, ErrUnknownKey) {
				t.Errorf("flipped key id byte %d: %v, want ErrUnknownKey", i, err)
			}
		default:
			if !errors.Is(err, ErrAuthentication) {
				t.Errorf("flipped byte %d: %v, want ErrAuthentication", i, err)
			}
		}
	}
	if _, err := r.Open(sealed[:len(sealed)-1], []byte("aad")); !errors.Is(err, ErrAuthentication) {
		t.Errorf("truncated tag: %v", err)
	}
	if _, err := r.Open(sealed[:Overhead-1], []byte("aad")); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "shorter than") {
		t.Errorf("too short: %v", err)
	}
	if _, err := r.Open(append(bytes.Clone(sealed), 0), []byte("aad")); !errors.Is(err, ErrAuthentication) {
		t.Errorf("extra byte: %v", err)
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := newKey(t, 1), newKey(t, 2)
	before := newRing(t, oldKey)
	sealedOld, _ := before.Seal([]byte("v1 secret"), []byte("r1"))

	during := newRing(t, newKey, oldKey)
	if during.CurrentID() != newKey.ID() || during.CurrentID() == oldKey.ID() {
		t.Fatalf("current id %s, want the new key's %s", during.CurrentID(), newKey.ID())
	}
	got, err := during.Open(sealedOld, []byte("r1"))
	if err != nil || string(got) != "v1 secret" {
		t.Fatalf("old ciphertext during rotation: %q, %v", got, err)
	}
	if !during.NeedsRotation(sealedOld) {
		t.Error("NeedsRotation false for a value under the previous key")
	}
	sealedNew, _ := during.Seal([]byte("v2 secret"), []byte("r2"))
	if !bytes.Equal(sealedNew[1:5], newKey.id[:]) || during.NeedsRotation(sealedNew) {
		t.Errorf("new seal under key % x, want the current key", sealedNew[1:5])
	}

	resealed, err := during.Reseal(sealedOld, []byte("r1"))
	if err != nil {
		t.Fatal(err)
	}
	if during.NeedsRotation(resealed) {
		t.Error("resealed value still needs rotation")
	}
	same, err := during.Reseal(resealed, []byte("r1"))
	if err != nil || !bytes.Equal(same, resealed) {
		t.Errorf("Reseal of a current value changed it: %v", err)
	}
	if _, err := during.Reseal(sealedOld, []byte("wrong")); !errors.Is(err, ErrAuthentication) {
		t.Errorf("Reseal with the wrong aad: %v", err)
	}

	// After the rotation the old key is gone: old values fail clearly.
	after := newRing(t, newKey)
	if got, err := after.Open(resealed, []byte("r1")); err != nil || string(got) != "v1 secret" {
		t.Fatalf("resealed value after rotation: %q, %v", got, err)
	}
	_, err = after.Open(sealedOld, []byte("r1"))
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), oldKey.ID()) || !strings.Contains(err.Error(), "previous master key") {
		t.Errorf("old value after the old key is dropped: %v", err)
	}
	if !after.NeedsRotation(sealedOld) {
		t.Error("NeedsRotation false for a value under an unknown key")
	}
	if after.NeedsRotation([]byte("junk")) {
		t.Error("NeedsRotation true for malformed input")
	}
}

func TestKeyringValidation(t *testing.T) {
	a, b := newKey(t, 1), newKey(t, 2)
	if _, err := NewKeyring(nil); err == nil {
		t.Error("NewKeyring(nil) succeeded")
	}
	if _, err := NewKeyring(a, b, nil); err == nil {
		t.Error("nil previous key accepted")
	}
	if _, err := NewKeyring(a, newKey(t, 1)); err == nil || !strings.Contains(err.Error(), "is the current key") {
		t.Errorf("current key repeated as previous: %v", err)
	}
	if _, err := NewKeyring(a, b, b); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("previous key twice: %v", err)
	}
	if a.ID() == b.ID() || len(a.ID()) != 8 {
		t.Errorf("ids %q and %q", a.ID(), b.ID())
	}
	if got := newRing(t, b, a).IDs(); len(got) != 2 || got[0] != b.ID() || got[1] != a.ID() {
		t.Errorf("IDs() = %v, want current first", got)
	}
}

func TestKeyIDIsStable(t *testing.T) {
	// The id is part of the stored format: it must never change for a key.
	if got := newKey(t, 0).ID(); got != newKey(t, 0).ID() {
		t.Fatal("id differs between two loads of the same key")
	}
	k, _ := ParseMasterKey(base64.StdEncoding.EncodeToString(make([]byte, KeySize)))
	if k.ID() != newKey(t, 0).ID() {
		t.Fatal("parsed and raw key ids differ")
	}
	const zeroKeyID = "2593050a" // HMAC-SHA256(32 zero bytes, "hookwire secrets key id v1")[:4], computed with Python hmac
	if k.ID() != zeroKeyID {
		t.Fatalf("id of the all-zero key = %s, want %s", k.ID(), zeroKeyID)
	}
}

// The stored format is fixed: a value sealed by an independent
// implementation (Node.js crypto: HKDF-SHA256, AES-256-GCM) with the
// all-zero master key, a fixed nonce and aad "sub_01ABC/key/1" opens.
func TestOpenKnownAnswer(t *testing.T) {
	const vector = "012593050a000102030405060708090a0ba8bc2c9e0d85f404928f7c94bdae82a027d29a56a6fe94d5101b8df89f29c87d04e4818b59515904547ad66e38b44b38f4b45f175522"
	sealed, err := hex.DecodeString(vector)
	if err != nil {
		t.Fatal(err)
	}
	got, err := newRing(t, newKey(t, 0)).Open(sealed, []byte("sub_01ABC/key/1"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" {
		t.Fatalf("Open = %q", got)
	}
}

func TestPrintingRevealsNoKey(t *testing.T) {
	raw := bytes.Repeat([]byte{0x5A}, KeySize)
	k, _ := NewMasterKey(raw)
	r := newRing(t, k)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		for _, v := range []any{k, r, *r} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, "5a5a5a") || strings.Contains(out, "90 90 90") || strings.Contains(out, base64.StdEncoding.EncodeToString(raw)[:12]) {
				t.Errorf("Sprintf(%s) = %q shows key material", verb, out)
			}
		}
	}
	if !strings.Contains(fmt.Sprint(k), k.ID()) || !strings.Contains(fmt.Sprint(r), k.ID()) {
		t.Errorf("printing does not show the id: %v / %v", k, r)
	}
}

func TestParseMasterKey(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, KeySize))
	if _, err := ParseMasterKey("  " + good + "\n"); err != nil {
		t.Fatalf("whitespace around a good key: %v", err)
	}
	secretish := "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNl"
	for in, want := range map[string]string{
		"":                   "is empty",
		"not base64 at all!": "not valid standard base64",
		secretish:            "decodes to 30 bytes, want 32",
		good[:len(good)-4]:   "decodes to 30 bytes", // shorter but valid base64
		good + good:          "not valid standard base64",
		base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, KeySize)): "not valid standard base64",
	} {
		_, err := ParseMasterKey(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseMasterKey(%.10q...) = %v, want %q", in, err, want)
			continue
		}
		if len(in) > 8 && strings.Contains(err.Error(), in[:8]) {
			t.Errorf("error %q echoes the key text", err)
		}
	}
	if _, err := NewMasterKey(make([]byte, 16)); err == nil || !strings.Contains(err.Error(), "32 bytes, got 16") {
		t.Errorf("16-byte key: %v", err)
	}
}

func TestMasterKeyFromEnv(t *testing.T) {
	const name = "HOOKWIRE_TEST_MASTER_KEY"
	t.Setenv(name, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{3}, KeySize)))
	k, err := MasterKeyFromEnv(name)
	if err != nil || k.ID() != newKey(t, 3).ID() {
		t.Fatalf("MasterKeyFromEnv = %v, %v", k, err)
	}
	t.Setenv(name, "short")
	if _, err := MasterKeyFromEnv(name); err == nil || !strings.Contains(err.Error(), name) {
		t.Errorf("bad value: %v, want an error naming the variable", err)
	}
	os.Unsetenv(name)
	if _, err := MasterKeyFromEnv(name); err == nil || !strings.Contains(err.Error(), "is not set") {
		t.Errorf("unset: %v", err)
	}
}

func TestGenerateAndLoadKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	gen, err := GenerateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", info.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data))); err != nil || len(raw) != KeySize || !strings.HasSuffix(string(data), "\n") {
		t.Fatalf("key file content is not one line of base64 of 32 bytes (%d bytes, %v)", len(raw), err)
	}
	loaded, err := LoadMasterKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.ID() != gen.ID() {
		t.Fatalf("loaded id %s, generated %s", loaded.ID(), gen.ID())
	}
	// What one seals the other opens.
	sealed, _ := newRing(t, gen).Seal([]byte("x"), nil)
	if _, err := newRing(t, loaded).Open(sealed, nil); err != nil {
		t.Fatal(err)
	}

	// Never overwrite.
	_, err = GenerateKeyFile(path)
	if err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second GenerateKeyFile: %v", err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, data) {
		t.Fatal("existing key file was changed")
	}
	if _, err := GenerateKeyFile(filepath.Join(t.TempDir(), "missing", "dir", "k")); err == nil {
		t.Error("GenerateKeyFile into a missing directory succeeded")
	}
}

func TestLoadMasterKeyErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, KeySize))
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope"), "open master key file"},
		{"directory", dir, "not a regular file"},
		{"garbage", write("garbage", "hello world\n", 0o600), "not valid standard base64"},
		{"short", write("short", base64.StdEncoding.EncodeToString(make([]byte, 16)), 0o600), "decodes to 16 bytes"},
		{"empty", write("empty", "", 0o600), "is empty"},
		{"huge", write("huge", strings.Repeat("A", 5000), 0o600), "larger than 1024 bytes"},
	}
	if runtime.GOOS != "windows" {
		tests = append(tests,
			struct{ name, path, want string }{"world readable", write("world", good, 0o644), "chmod 600"},
			struct{ name, path, want string }{"group writable", write("groupw", good, 0o660), "mode 0660"},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadMasterKey(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadMasterKey = %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), good[:12]) {
				t.Fatalf("error %q shows key material", err)
			}
		})
	}
	if _, err := LoadMasterKey(write("group-readable", good, 0o640)); err != nil {
		t.Errorf("0640 key file refused: %v", err)
	}
}

// FuzzOpen feeds arbitrary bytes and associated data to Open and
// NeedsRotation: they must never panic, every error must be one of the
// documented kinds, and anything that opens must be a seed's plaintext
// under its own aad (the fuzzer cannot forge GCM). The seeds' nonces are
// random, so seeds are compared by content, not by ciphertext.
// Sealing the input as plaintext must always round-trip.
func FuzzOpen(f *testing.F) {
	cur, prev := newKey(f, 1), newKey(f, 2)
	r := newRing(f, cur, prev)
	old := newRing(f, prev)
	known := map[[2]string]bool{}
	add := func(ring *Keyring, plain, aad string) {
		s, err := ring.Seal([]byte(plain), []byte(aad))
		if err != nil {
			f.Fatal(err)
		}
		known[[2]string{plain, aad}] = true
		f.Add(s, []byte(aad))
	}
	add(r, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "sub_1/key/1")
	add(old, "old secret", "sub_2/key/1")
	add(r, "", "")
	f.Add([]byte{}, []byte{})
	f.Add([]byte{formatVersion}, []byte("x"))
	f.Add(bytes.Repeat([]byte{formatVersion}, Overhead), []byte(nil))
	f.Add(append([]byte{2}, make([]byte, 40)...), []byte("a"))

	f.Fuzz(func(t *testing.T, sealed, aad []byte) {
		plain, err := r.Open(sealed, aad)
		needs := r.NeedsRotation(sealed)
		if err == nil {
			if !known[[2]string{string(plain), string(aad)}] {
				t.Fatalf("Open accepted a value the ring never sealed: % x", sealed)
			}
			if needs != !bytes.Equal(sealed[1:headerSize], cur.id[:]) {
				t.Fatal("NeedsRotation disagrees with the key id")
			}
		} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrAuthentication) {
			t.Fatalf("Open returned an undocumented error: %v", err)
		} else if errors.Is(err, ErrMalformed) && needs {
			t.Fatal("NeedsRotation true for malformed input")
		}

		s, err := r.Seal(sealed, aad)
		if err != nil {
			t.Fatal(err)
		}
		back, err := r.Open(s, aad)
		if err != nil || !bytes.Equal(back, sealed) {
			t.Fatalf("round trip of %d bytes failed: %v", len(sealed), err)
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	r := newRing(b, newKey(b, 1))
	plain := make([]byte, 64)
	aad := []byte("sub_01HZZZZZZZZZZZZZZZZZZZZZZZ/key/1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Seal(plain, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	r := newRing(b, newKey(b, 1), newKey(b, 2))
	aad := []byte("sub_01HZZZZZZZZZZZZZZZZZZZZZZZ/key/1")
	sealed, _ := r.Seal(make([]byte, 64), aad)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Open(sealed, aad); err != nil {
			b.Fatal(err)
		}
	}
}
