package pluginhost

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// PluginPrefix starts the file name of every transport plugin in a plugin
// directory: the file hookwire-transport-<name> serves the transport
// <name>, e.g. hookwire-transport-file serves "file".
const PluginPrefix = "hookwire-transport-"

// validName is the rule subscriptions apply to transport names.
var validName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

// Discovery is what ScanDir found in a plugin directory.
type Discovery struct {
	// Specs are the plugins to start, sorted by name.
	Specs []Spec
	// Skipped are the directory entries that are not started, with why.
	Skipped []Skipped
}

// Skipped is a directory entry that ScanDir did not turn into a Spec.
type Skipped struct {
	// Path is the entry's path.
	Path string
	// Name is the transport name when the entry is named like a plugin
	// (hookwire-transport-<name>), so an operator probably expected it to
	// run; empty for unrelated files.
	Name string
	// Reason says why it was skipped and, where it helps, how to fix it.
	Reason string
}

// Discover returns a Spec for every transport plugin in dir (see ScanDir),
// dropping the list of skipped entries. Callers that log what was skipped
// use ScanDir.
func Discover(dir string, pins map[string]string) ([]Spec, error) {
	d, err := ScanDir(dir, pins)
	return d.Specs, err
}

// ScanDir finds the transport plugins in a plugin directory.
//
// The convention: a plugin is an executable regular file (or a symbolic
// link to one) directly in dir, named hookwire-transport-<name>, where
// <name> is the transport name subscriptions use: a lower-case letter, then
// up to 63 lower-case letters, digits, '-' or '_'. Its Spec runs it with no
// arguments. Everything else is skipped with a reason: other names,
// directories and special files, files without an execute bit, and files
// any user may write (chmod o-w fixes that; anyone who can replace the
// binary could otherwise run code as the agent).
//
// pins maps transport names to the hex SHA-256 of their binary (as printed
// by sha256sum). A pinned plugin's Spec carries the pin, so the Host
// refuses to start a binary whose checksum differs, at start and at every
// restart. A pin that is not 64 hex digits, or names a transport that has
// no runnable plugin in dir, is an error: the operator asked for a plugin
// that will not run.
func ScanDir(dir string, pins map[string]string) (Discovery, error) {
	for name, pin := range pins {
		if _, err := decodePin(pin); err != nil {
			return Discovery{}, fmt.Errorf("sha256 pin for transport plugin %q: %w", name, err)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Discovery{}, fmt.Errorf("plugin directory %s: %w", dir, err)
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return Discovery{}, fmt.Errorf("read plugin directory: %w", err)
	}

	var d Discovery
	skip := func(path, name, reason string) {
		d.Skipped = append(d.Skipped, Skipped{Path: path, Name: name, Reason: reason})
	}
	for _, e := range entries {
		path := filepath.Join(abs, e.Name())
		name, isPluginName := strings.CutPrefix(e.Name(), PluginPrefix)
		if !isPluginName {
			skip(path, "", fmt.Sprintf("not named %s<name>", PluginPrefix))
			continue
		}
		if !validName.MatchString(name) {
			skip(path, "", fmt.Sprintf("%q is not a valid transport name (a lower-case letter, then up to 63 lower-case letters, digits, '-' or '_')", name))
			continue
		}
		info, err := os.Stat(path) // follows a symbolic link
		if err != nil {
			skip(path, name, fmt.Sprintf("cannot stat it: %v", err))
			continue
		}
		if reason := unrunnable(info.Mode()); reason != "" {
			skip(path, name, reason)
			continue
		}
		d.Specs = append(d.Specs, Spec{Name: name, Command: []string{path}, SHA256: strings.TrimSpace(pins[name])})
	}

	for _, name := range slices.Sorted(maps.Keys(pins)) {
		if slices.ContainsFunc(d.Specs, func(s Spec) bool { return s.Name == name }) {
			continue
		}
		why := "there is no file " + filepath.Join(abs, PluginPrefix+name)
		for _, s := range d.Skipped {
			if s.Name == name {
				why = s.Path + " is skipped: " + s.Reason
			}
		}
		return d, fmt.Errorf("transport plugin %q is pinned but will not run: %s", name, why)
	}
	return d, nil
}

// unrunnable says why a file with this mode cannot be a plugin, or "".
func unrunnable(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "it is a directory"
	case !m.IsRegular():
		return fmt.Sprintf("it is not a regular file (mode %s)", m)
	case m.Perm()&0o111 == 0:
		return "it is not executable (chmod +x it to enable the plugin)"
	case m.Perm()&0o002 != 0:
		return "any user may write it, so anyone could replace the plugin the agent runs (chmod o-w it to enable the plugin)"
	}
	return ""
}
