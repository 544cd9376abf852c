package secrets

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/hookwire/hookwire/internal/fsutil"
)

// maxKeyFile bounds what LoadMasterKey reads; a key file is one line.
const maxKeyFile = 1024

// keyFileMode is the permission GenerateKeyFile gives key files.
const keyFileMode = 0o600

// ParseMasterKey returns the master key encoded in text: standard base64 of
// 32 bytes, surrounding whitespace ignored. Errors never echo the text.
func ParseMasterKey(text string) (*MasterKey, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, errors.New("master key is empty: expected base64 of 32 random bytes (e.g. from `openssl rand -base64 32`)")
	}
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("master key is not valid standard base64 (%v): expected base64 of 32 random bytes", err)
	}
	if len(raw) != KeySize {
		return nil, fmt.Errorf("master key decodes to %d bytes, want %d (e.g. from `openssl rand -base64 32`)", len(raw), KeySize)
	}
	return NewMasterKey(raw)
}

// MasterKeyFromEnv returns the master key in the environment variable name.
func MasterKeyFromEnv(name string) (*MasterKey, error) {
	text, ok := os.LookupEnv(name)
	if !ok {
		return nil, fmt.Errorf("environment variable %s is not set: put a master key (base64 of 32 random bytes) in it", name)
	}
	k, err := ParseMasterKey(text)
	if err != nil {
		return nil, fmt.Errorf("environment variable %s: %w", name, err)
	}
	return k, nil
}

// LoadMasterKey reads a master key file written by GenerateKeyFile (base64
// of 32 bytes, one line). The file must not be accessible to others nor
// writable by its group (0600 or 0640, say): anyone who can read it can
// decrypt every stored secret.
func LoadMasterKey(path string) (*MasterKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open master key file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("master key file %s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); runtime.GOOS != "windows" && perm&0o027 != 0 {
		return nil, fmt.Errorf("master key file %s has mode %04o, open to others or group-writable: run chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read master key file %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("master key file %s is larger than %d bytes: is it the right file?", path, maxKeyFile)
	}
	k, err := ParseMasterKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	return k, nil
}

// GenerateKeyFile writes a new random master key to path with mode 0600
// and returns it. It refuses to overwrite an existing file, which may hold
// the only key that opens stored secrets.
func GenerateKeyFile(path string) (*MasterKey, error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate master key: %w", err)
	}
	k, err := NewMasterKey(raw)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, keyFileMode)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("master key file %s already exists; refusing to overwrite it (it may be the only key that opens stored secrets): choose a new path, or remove it deliberately", path)
	}
	if err != nil {
		return nil, fmt.Errorf("create master key file: %w", err)
	}
	werr := writeKey(f, raw)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return nil, fmt.Errorf("write master key file %s: %w", path, werr)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		// The file's name may not survive a crash: a key the user stores
		// data under could vanish. Fail, and leave nothing to refuse a
		// retry with.
		os.Remove(path)
		return nil, fmt.Errorf("write master key file %s: sync its directory: %w", path, err)
	}
	return k, nil
}

func writeKey(f *os.File, raw []byte) error {
	// The umask cannot widen 0600, but an inherited ACL or a FUSE mount may;
	// set the mode explicitly.
	if runtime.GOOS != "windows" {
		if err := f.Chmod(keyFileMode); err != nil {
			return err
		}
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n"); err != nil {
		return err
	}
	return f.Sync()
}

// syncDir makes the new directory entry durable; a variable so tests can
// make it fail.
var syncDir = fsutil.SyncDir
