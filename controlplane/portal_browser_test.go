package controlplane_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hookwire/hookwire/controlplane"
	"github.com/hookwire/hookwire/internal/browsertest"
)

// TestPortalPageWhenTheSessionExpires: a customer has the portal open when
// its session expires (the server's clock moves past it); the next thing
// they do shows that the link is no longer valid, and reopening the link
// shows the same.
func TestPortalPageWhenTheSessionExpires(t *testing.T) {
	browsertest.Require(t)
	c := &clock{}
	h := start(t, t.TempDir(), controlplane.Config{Now: c.now})
	h.setup("acme")
	ps := newPortalSession(t, h, "acme", `{"ttl":"120s","features":["endpoints.write"]}`)
	ctx := browsertest.New(t)
	url := "http://" + h.srv.HTTPAddr() + ps.URL
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("li.endpoint"))); err != nil {
		t.Fatalf("open the portal: %v", err)
	}
	c.advance(3 * time.Minute)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.Search("//li[contains(@class,'endpoint')]//button[text()='Deliveries']")),
		chromedp.WaitVisible(chromedp.Search("//h2[text()='This link is no longer valid']"))); err != nil {
		t.Fatalf("after expiry, the next action must say the link is no longer valid: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil || !strings.Contains(text, "This link is no longer valid") {
		t.Fatalf("reopening an expired link shows %q (%v)", text, err)
	}
}
