package controlplane

import (
	"bytes"
	"mime"
	"net/http"
	"strings"
)

// Server-Sent Events for the REST streams (deliveries:tail, operations
// :watch). The gateway writes a stream as newline-delimited JSON: one
// {"result": ...} per item, or {"error": ...} when the stream fails. A
// client that asks for text/event-stream (a browser's EventSource) gets
// each line as one event instead: "data: <the same JSON>" with an empty
// line after it, and "event: error" before a failure. Answers that are
// not a stream (an error before it starts: 401, 404) stay JSON.

// isStream reports whether path is one of the REST streams.
func isStream(path string) bool {
	return strings.HasSuffix(path, "/deliveries:tail") || strings.HasSuffix(path, ":watch")
}

// wantsEventStream reports whether r accepts text/event-stream.
func wantsEventStream(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/event-stream" {
			return true
		}
	}
	return false
}

// sseWriter turns the gateway's NDJSON stream into Server-Sent Events.
type sseWriter struct {
	http.ResponseWriter
	stream      bool   // 200: the body is a stream to convert
	wroteHeader bool   // WriteHeader ran (a Write first means 200)
	line        []byte // a line not yet complete
}

func (w *sseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	if code == http.StatusOK {
		w.stream = true
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
		h.Del("Content-Length")
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *sseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.stream {
		return w.ResponseWriter.Write(p)
	}
	n := len(p)
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			return n, nil
		}
		line := bytes.TrimSpace(w.line[:i])
		w.line = w.line[i+1:]
		if len(line) == 0 {
			continue
		}
		var ev bytes.Buffer
		if bytes.HasPrefix(line, []byte(`{"error"`)) {
			ev.WriteString("event: error\n")
		}
		ev.WriteString("data: ")
		ev.Write(line) // JSON from the marshaler has no raw newlines
		ev.WriteString("\n\n")
		if _, err := w.ResponseWriter.Write(ev.Bytes()); err != nil {
			return 0, err
		}
	}
}

func (w *sseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *sseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
