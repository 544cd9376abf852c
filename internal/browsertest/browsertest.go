// Package browsertest starts headless Chromium for tests that drive the web
// console and portal through a real browser (chromedp). Every test gets its
// own browser process with an empty profile, closed when the test ends.
//
// Chromium comes from Debian's package (`apt-get install chromium`; .ci/run
// installs it). Without it a test is skipped with a message naming the
// package, or fails when CI=true, like the tests that need a broker.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// DefaultTimeout bounds a whole browser test: a page that never shows what
// the test waits for fails it instead of hanging the suite.
const DefaultTimeout = 90 * time.Second

// minWindowWidth is the narrowest window headless Chromium makes; a
// narrower Options.Width is emulated.
const minWindowWidth = 500

// candidates are where Debian and other distributions put Chromium.
var candidates = []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}

// Path returns the Chromium executable: $HOOKWIRE_CHROMIUM if set, else the
// first of the usual places that exists, else "".
func Path() string {
	if p := os.Getenv("HOOKWIRE_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// Require returns the Chromium executable, or skips the test (fails it
// under CI=true) with a message saying how to install it.
func Require(t testing.TB) string {
	t.Helper()
	p := Path()
	if p != "" {
		return p
	}
	msg := "headless Chromium is not installed (apt-get install chromium, or set HOOKWIRE_CHROMIUM); .ci/run installs it"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Options changes the browser New starts.
type Options struct {
	// Width and Height of the window in CSS pixels; default 1280×900.
	// Widths under 500 px (a phone's) are emulated, since a headless
	// window is never narrower.
	Width, Height int
	// Timeout bounds the test's browser context; default DefaultTimeout.
	Timeout time.Duration
}

// New starts a headless Chromium for t and returns the context of its
// first tab; pass it to chromedp.Run. The browser is closed, and its
// profile directory removed, when the test ends. Console messages and
// uncaught page errors are logged to t, so a failing page explains itself.
func New(t testing.TB) context.Context {
	t.Helper()
	return NewWith(t, Options{})
}

// NewWith is New with options.
func NewWith(t testing.TB, o Options) context.Context {
	t.Helper()
	exe := Require(t)
	if o.Width == 0 {
		o.Width, o.Height = 1280, 900
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	// The flags keep Chromium off the network (this machine's network is
	// closed, and a test must only talk to loopback) and quiet: no
	// background updates, sync, first-run or QUIC probing.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.DisableGPU,
		chromedp.WindowSize(o.Width, o.Height),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-proxy-server", true),
	}
	if os.Geteuid() == 0 {
		// Chromium refuses to run as root with its sandbox on.
		opts = append(opts, chromedp.NoSandbox)
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), o.Timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(func(format string, args ...any) {
		t.Logf("chromium: "+format, args...)
	}))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelTimeout()
	})
	// Start the browser now, so a broken install fails here with a clear
	// message rather than inside the first action of the test.
	if err := chromedp.Do(tabCtx); err != nil {
		t.Fatalf("start headless Chromium (%s): %v", exe, err)
	}
	if o.Width < minWindowWidth {
		// A window cannot be narrower than minWindowWidth; a phone's
		// width is emulated instead (what the page's media queries see).
		if err := chromedp.Do(tabCtx, chromedp.EmulateViewport(int64(o.Width), int64(o.Height))); err != nil {
			t.Fatalf("emulate a %d×%d viewport: %v", o.Width, o.Height, err)
		}
	}
	logConsole(t, tabCtx)
	return tabCtx
}

// logConsole logs the page's console messages and uncaught exceptions
// until the tab closes.
func logConsole(t testing.TB, ctx context.Context) {
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil || ctx.Err() != nil {
				return
			}
			logf(t, "page console.%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1)
		}
	}()
}

// logf logs unless the test has ended (testing panics on a log after
// the end, and the browser may still report while it closes).
func logf(t testing.TB, format string, args ...any) {
	defer func() { _ = recover() }()
	t.Logf(format, args...)
}
