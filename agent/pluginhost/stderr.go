package pluginhost

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// maxStderrLine caps one relayed stderr line; longer lines are cut.
const maxStderrLine = 8 << 10

// stderrLogger relays what a plugin writes to its os.Stderr after Serve
// (go-plugin carries it over the connection) into the agent's log, one
// record per line.
type stderrLogger struct {
	logger *slog.Logger

	mu      sync.Mutex
	partial []byte
}

func (w *stderrLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxStderrLine - len(w.partial)
			w.partial = append(w.partial, p[:min(len(p), max(room, 0))]...)
			break
		}
		line := p[:i]
		if len(w.partial) > 0 {
			w.partial = append(w.partial, line[:min(len(line), max(maxStderrLine-len(w.partial), 0))]...)
			line = w.partial
		}
		if len(line) > maxStderrLine {
			line = line[:maxStderrLine]
		}
		if len(bytes.TrimSpace(line)) > 0 {
			w.logger.Log(context.Background(), slog.LevelWarn, "transport plugin stderr", "line", string(line))
		}
		w.partial = w.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}
