package pluginhost

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestStderrLoggerSplitsLines(t *testing.T) {
	var out bytes.Buffer
	w := &stderrLogger{logger: slog.New(slog.NewTextHandler(&out, nil))}
	for _, chunk := range []string{"first li", "ne\nsecond\n\n", "third", "\n", strings.Repeat("x", maxStderrLine+100) + "\n"} {
		if n, err := w.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("write %q = %d, %v", chunk, n, err)
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d records, want 4:\n%s", len(lines), out.String())
	}
	for i, want := range []string{`line="first line"`, "line=second", "line=third", "line=" + strings.Repeat("x", maxStderrLine)} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], "level=WARN") {
			t.Errorf("record %d = %q, want a warn record with %s", i, lines[i], want)
		}
	}
	if strings.Contains(lines[3], strings.Repeat("x", maxStderrLine+1)) {
		t.Error("long line was not cut")
	}
}
