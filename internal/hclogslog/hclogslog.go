// Package hclogslog lets libraries that log through hashicorp/go-hclog
// (raft and its stores, go-plugin and the plugins it relays) log into a
// *slog.Logger, so their records land in the same stream, at the same
// levels, as everything else. Trace maps to Debug-4.
package hclogslog

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Options shape a logger.
type Options struct {
	// NameKey is the attribute the logger's name goes under ("component").
	NameKey string
	// Level drops records below it before any work is done; hclog.NoLevel
	// (the zero value) leaves the decision to the slog handler.
	Level hclog.Level
	// Routine lists warning messages that are a normal part of running:
	// they are logged at Info.
	Routine map[string]bool
}

type logger struct {
	l    *slog.Logger
	name string
	args []any
	opts *Options
}

var _ hclog.Logger = (*logger)(nil)

// New returns an hclog.Logger named name that writes to l.
func New(l *slog.Logger, name string, opts Options) hclog.Logger {
	if opts.NameKey == "" {
		opts.NameKey = "component"
	}
	return &logger{l: l, name: name, opts: &opts}
}

func slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (a *logger) enabled(level hclog.Level) bool {
	if level == hclog.Off || a.opts.Level != hclog.NoLevel && level < a.opts.Level {
		return false
	}
	return a.l.Enabled(context.Background(), slogLevel(level))
}

func (a *logger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Warn && a.opts.Routine[msg] {
		level = hclog.Info
	}
	if !a.enabled(level) {
		return
	}
	all := make([]any, 0, len(a.args)+len(args)+2)
	if a.name != "" {
		all = append(all, a.opts.NameKey, a.name)
	}
	all = append(all, a.args...)
	for _, v := range args {
		// hclog.Fmt values carry a format and its arguments.
		if f, ok := v.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				v = fmt.Sprintf(format, f[1:]...)
			}
		}
		all = append(all, v)
	}
	a.l.Log(context.Background(), slogLevel(level), msg, all...)
}

func (a *logger) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *logger) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *logger) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *logger) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *logger) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *logger) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *logger) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *logger) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *logger) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *logger) IsError() bool { return a.enabled(hclog.Error) }

func (a *logger) ImpliedArgs() []any { return a.args }

func (a *logger) With(args ...any) hclog.Logger {
	return &logger{l: a.l, name: a.name, args: append(append([]any(nil), a.args...), args...), opts: a.opts}
}

func (a *logger) Name() string { return a.name }

func (a *logger) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return a.ResetNamed(name)
}

func (a *logger) ResetNamed(name string) hclog.Logger {
	return &logger{l: a.l, name: name, args: a.args, opts: a.opts}
}

// SetLevel changes the level every logger derived from the same New
// shares.
func (a *logger) SetLevel(level hclog.Level) { a.opts.Level = level }

func (a *logger) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

func (a *logger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *logger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return stdWriter{a}
}

// stdWriter turns lines written through a *log.Logger into records,
// "[WARN]"-style prefixes honoured; a line without one is Info, or the
// logger's Level when that is higher (so it is not dropped).
type stdWriter struct{ a *logger }

var stdPrefixes = []struct {
	prefix string
	level  hclog.Level
}{{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info}, {"[WARN]", hclog.Warn}, {"[ERR]", hclog.Error}, {"[ERROR]", hclog.Error}}

func (w stdWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := max(hclog.Info, w.a.opts.Level)
	for _, sp := range stdPrefixes {
		if strings.HasPrefix(msg, sp.prefix) {
			level, msg = sp.level, strings.TrimSpace(strings.TrimPrefix(msg, sp.prefix))
			break
		}
	}
	w.a.Log(level, msg)
	return len(p), nil
}
