package browsertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestNewRendersALoopbackPage starts the browser, loads a page from a
// loopback server and reads what its script wrote into the DOM.
func TestNewRendersALoopbackPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>t</title><p id="out">static</p>
<script>document.getElementById("out").textContent = "from script " + (1 + 2); console.log("hello from the page");</script>`)
	}))
	t.Cleanup(srv.Close)

	ctx := New(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#out")))
	if err != nil {
		t.Fatal(err)
	}
	if got != "from script 3" {
		t.Fatalf("page text = %q, want the script's output %q", got, "from script 3")
	}
}

// TestNarrowWidthIsEmulated: a phone's width, narrower than any headless
// window, is what the page's layout sees.
func TestNarrowWidthIsEmulated(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><meta name="viewport" content="width=device-width, initial-scale=1"><title>t</title><p>narrow</p>`)
	}))
	t.Cleanup(srv.Close)
	ctx := NewWith(t, Options{Width: 360, Height: 740})
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.innerWidth`))
	if err != nil || w != 360 {
		t.Fatalf("window.innerWidth = %d, %v; want 360", w, err)
	}
}

func TestRequireSkipsLocallyAndFailsInCI(t *testing.T) {
	t.Setenv("HOOKWIRE_CHROMIUM", "")
	old := candidates
	candidates = []string{"/nonexistent/chromium"}
	t.Cleanup(func() { candidates = old })
	t.Setenv("PATH", t.TempDir())

	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		r := &recorder{TB: t}
		func() {
			defer func() { _ = recover() }()
			Require(r)
		}()
		if ci == "true" && (r.failed == "" || r.skipped != "") {
			t.Errorf("CI=true: failed=%q skipped=%q; want a failure naming chromium", r.failed, r.skipped)
		}
		if ci == "" && (r.skipped == "" || r.failed != "") {
			t.Errorf("outside CI: failed=%q skipped=%q; want a skip naming chromium", r.failed, r.skipped)
		}
	}
}

// recorder captures Fatal and Skip instead of ending the test.
type recorder struct {
	testing.TB
	failed, skipped string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatal(args ...any) {
	r.failed = fmt.Sprint(args...)
	panic("fatal")
}
func (r *recorder) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	panic("skip")
}
