package api

import (
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/filter"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestCheckFrameAncestor(t *testing.T) {
	for in, want := range map[string]string{
		"https://app.example.com":      "https://app.example.com",
		"https://app.example.com/":     "https://app.example.com",
		"https://app.example.com:8443": "https://app.example.com:8443",
		"https://*.example.com":        "https://*.example.com",
		"http://localhost:3000":        "http://localhost:3000",
		"http://127.0.0.1:8080":        "http://127.0.0.1:8080",
		"http://[::1]:8080":            "http://[::1]:8080",
	} {
		got, err := checkFrameAncestor(in)
		if err != nil || got != want {
			t.Errorf("checkFrameAncestor(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "*", "app.example.com", "http://app.example.com", "https://*.com", "https://a.*.example.com",
		"https://app.example.com/x", "https://app.example.com?q", "https://app.example.com#f", "https://u@app.example.com",
		"https://app.example.com:0", "https://app.example.com:99999", "https://APP.example.com", "https://10.1.2.3",
		"https://app.example.com;script-src", "https://app example.com", "ftp://app.example.com", "javascript:alert(1)",
		"https://'self'", "data:text/html,x",
	} {
		if got, err := checkFrameAncestor(in); err == nil {
			t.Errorf("checkFrameAncestor(%q) = %q, want an error", in, got)
		}
	}
}

func TestPortalTokens(t *testing.T) {
	id, token, err := newPortalToken()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, "hwp_") || len(id) != 20 || portalTokenID(token) != id {
		t.Fatalf("id %q, token %q: the token must start with its id", id, token)
	}
	for _, bad := range []string{"", "hwp_", id, id + "_", "hwk_" + token[4:], token + "x"} {
		if portalTokenID(bad) != "" {
			t.Errorf("portalTokenID(%q) accepted a malformed token", bad)
		}
	}
}

func TestPortalGrantCovers(t *testing.T) {
	sub := func(id, tenant string, md map[string]string) *hookwirev1.Subscription {
		return &hookwirev1.Subscription{Id: id, Tenant: tenant, Metadata: md}
	}
	byLabels := newPortalGrant(&hookwirev1.PortalSession{Tenant: "acme", Labels: map[string]string{"customer": "c1", "env": "prod"}})
	byIDs := newPortalGrant(&hookwirev1.PortalSession{Tenant: "acme", SubscriptionIds: []string{"sub_a"}})
	whole := newPortalGrant(&hookwirev1.PortalSession{Tenant: "acme"})
	for _, c := range []struct {
		g    *portalGrant
		sub  *hookwirev1.Subscription
		want bool
	}{
		{byLabels, sub("sub_a", "acme", map[string]string{"customer": "c1", "env": "prod", "x": "y"}), true},
		{byLabels, sub("sub_a", "acme", map[string]string{"customer": "c1"}), false},
		{byLabels, sub("sub_a", "acme", map[string]string{"customer": "c2", "env": "prod"}), false},
		{byLabels, sub("sub_a", "globex", map[string]string{"customer": "c1", "env": "prod"}), false},
		{byIDs, sub("sub_a", "acme", nil), true},
		{byIDs, sub("sub_b", "acme", nil), false},
		{byIDs, sub("sub_a", "globex", nil), false},
		{whole, sub("sub_z", "acme", nil), true},
		{whole, sub("sub_z", "globex", nil), false},
	} {
		if got := c.g.covers(c.sub); got != c.want {
			t.Errorf("session %v covers %v = %v, want %v", c.g.session, c.sub, got, c.want)
		}
	}
}

func TestCreatePortalSessionDefaults(t *testing.T) {
	now := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	s := newTestServices(t, func(c *Config) { c.Now = func() time.Time { return now } })
	mustTenant(t, s, "acme")
	ctx := asTenant(t.Context(), "acme", scopeTenantAdmin)
	ps, err := s.portal.CreatePortalSession(ctx, &hookwirev1.CreatePortalSessionRequest{Tenant: "acme", Features: []string{"events.test", "endpoints.write"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := ps.GetExpireTime().AsTime(); !got.Equal(now.Add(time.Hour)) {
		t.Errorf("expire_time %v, want an hour from now", got)
	}
	if strings.Join(ps.GetFeatures(), ",") != "endpoints.write,events.test" || ps.GetUrl() != "/portal/"+ps.GetToken() {
		t.Errorf("session %v", ps)
	}
	rec, err := s.cfg.Store.GetPortalSession(ps.GetId())
	if err != nil || rec.GetSession().GetToken() != "" || rec.GetSession().GetUrl() != "" || len(rec.GetHash()) != 32 {
		t.Errorf("stored %v %v: only the token's hash may be stored", rec, err)
	}
	_, err = s.portal.CreatePortalSession(ctx, &hookwirev1.CreatePortalSessionRequest{Tenant: "acme", Ttl: durationpb.New(25 * time.Hour)})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("ttl 25h: %v, want InvalidArgument", err)
	}
	_, err = s.portal.CreatePortalSession(asTenant(t.Context(), "globex", scopeTenantAdmin), &hookwirev1.CreatePortalSessionRequest{Tenant: "acme"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("another tenant's key: %v, want NotFound", err)
	}
}

func TestLabelsFilter(t *testing.T) {
	labels := map[string]string{"customer": `c1" || true || "`, "env": "pro\nd\\"}
	f, err := filter.Compile(labelsFilter(labels))
	if err != nil {
		t.Fatalf("the filter of %q does not compile: %v", labels, err)
	}
	for _, c := range []struct {
		md   map[string]string
		want bool
	}{
		{map[string]string{"customer": `c1" || true || "`, "env": "pro\nd\\", "x": "y"}, true},
		{map[string]string{"customer": "c1", "env": "pro\nd\\"}, false},
		{map[string]string{"customer": `c1" || true || "`}, false},
		{nil, false},
	} {
		if got := f.Match("order.created", "application/json", []byte(`{}`), c.md); got != c.want {
			t.Errorf("%s on metadata %q = %v, want %v", f, c.md, got, c.want)
		}
	}
}
