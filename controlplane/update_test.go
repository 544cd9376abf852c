package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// httpTargetCheck is a target validator like the built-in http
// transport's: the url must be http(s).
func httpTargetCheck(_ context.Context, transport string, cfg *structpb.Struct) ([]string, bool, error) {
	if transport != "http" {
		return nil, false, nil
	}
	if u := cfg.GetFields()["url"].GetStringValue(); !strings.HasPrefix(u, "http") {
		return []string{"url " + quoteJSON(u) + " must use http or https"}, true, nil
	}
	return nil, true, nil
}

// fullSubscription sets every field a caller can set.
func fullSubscription() *hookwirev1.Subscription {
	cfg, _ := structpb.NewStruct(map[string]any{"url": "http://127.0.0.1:1/hook", "headers": map[string]any{"x-cfg": "a"}})
	return &hookwirev1.Subscription{
		Description: "base",
		EventTypes:  []string{"case.*"},
		Target: &hookwirev1.Target{Transport: "http", Config: cfg, Timeout: durationpb.New(10 * time.Second),
			Headers: map[string]string{"Authorization": "Bearer base-secret", "X-Team": "billing"}},
		Metadata: map[string]string{"team": "billing"},
		Filter:   "payload.amount > 1",
		RetryPolicy: &hookwirev1.RetryPolicy{Policy: &hookwirev1.RetryPolicy_Exponential{Exponential: &hookwirev1.ExponentialBackoff{
			Base: durationpb.New(time.Second), Cap: durationpb.New(time.Hour), MaxAttempts: 10}}},
		FlowControl:    &hookwirev1.FlowControl{RatePerSecond: 100, Burst: 10, MaxInFlight: 5},
		CircuitBreaker: &hookwirev1.CircuitBreaker{ConsecutiveFailures: 5, Cooldown: durationpb.New(30 * time.Second)},
	}
}

// updateClient changes subscriptions over gRPC or REST and reads them back.
type updateClient struct {
	t    *testing.T
	h    *deliveryHarness
	subs hookwirev1.SubscriptionServiceClient
}

func (c *updateClient) create(s *hookwirev1.Subscription) *hookwirev1.Subscription {
	c.t.Helper()
	created, err := c.subs.CreateSubscription(c.h.ctx(), &hookwirev1.CreateSubscriptionRequest{Tenant: "acme", Subscription: s})
	if err != nil {
		c.t.Fatal(err)
	}
	return c.get(created.GetId()) // as Get shows it (no secret)
}

func (c *updateClient) get(id string) *hookwirev1.Subscription {
	c.t.Helper()
	s, err := c.subs.GetSubscription(c.h.ctx(), &hookwirev1.GetSubscriptionRequest{Tenant: "acme", Id: id})
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

// grpc updates with the mask (comma-separated; "" sends none).
func (c *updateClient) grpc(id, mask string, sub *hookwirev1.Subscription) (*hookwirev1.Subscription, error) {
	sub = proto.Clone(sub).(*hookwirev1.Subscription)
	sub.Id = id
	req := &hookwirev1.UpdateSubscriptionRequest{Tenant: "acme", Subscription: sub}
	if mask != "" {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: strings.Split(mask, ",")}
	}
	return c.subs.UpdateSubscription(c.h.ctx(), req)
}

// rest sends PATCH with the mask in the query ("" sends none) and
// returns the subscription or the error as a status.
func (c *updateClient) rest(id, mask, body string) (*hookwirev1.Subscription, int, error) {
	c.t.Helper()
	path := "/v1/tenants/acme/subscriptions/" + id
	if mask != "" {
		path += "?update_mask=" + url.QueryEscape(mask)
	}
	data, code := c.h.restRaw("PATCH", path, body, nil)
	if code != http.StatusOK {
		var e restError
		if err := json.Unmarshal(data, &e); err != nil {
			c.t.Fatalf("PATCH %s: HTTP %d %s: %v", path, code, data, err)
		}
		return nil, code, status.Error(codes.Code(e.Code), e.Message)
	}
	out := &hookwirev1.Subscription{}
	if err := protojson.Unmarshal(data, out); err != nil {
		c.t.Fatalf("PATCH %s: decode %s: %v", path, data, err)
	}
	return out, code, nil
}

func showSub(s *hookwirev1.Subscription) string {
	b, _ := protojson.Marshal(s)
	return string(b)
}

// TestUpdateSubscriptionChangesOnlyTheNamedFields: every field an update
// can change, changed alone over gRPC (update_mask), REST with the mask
// in the query, and REST without a mask (the fields present in the body),
// leaves every other field as it was, secret header values included.
func TestUpdateSubscriptionChangesOnlyTheNamedFields(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{ValidateTarget: httpTargetCheck})
	c := &updateClient{t: t, h: h, subs: hookwirev1.NewSubscriptionServiceClient(h.conn)}
	cfgURL := func(s *hookwirev1.Subscription, u string) { s.Target.Config.Fields["url"] = structpb.NewStringValue(u) }

	cases := []struct {
		name string
		mask string
		sub  *hookwirev1.Subscription // the gRPC request's subscription
		body string                   // the REST body
		want func(*hookwirev1.Subscription)
	}{
		{"description", "description", &hookwirev1.Subscription{Description: "x"}, `{"description":"x"}`,
			func(s *hookwirev1.Subscription) { s.Description = "x" }},
		{"description cleared", "description", &hookwirev1.Subscription{}, `{"description":""}`,
			func(s *hookwirev1.Subscription) { s.Description = "" }},
		{"event types", "event_types", &hookwirev1.Subscription{EventTypes: []string{"refund.*", "case.created"}}, `{"event_types":["refund.*","case.created"]}`,
			func(s *hookwirev1.Subscription) { s.EventTypes = []string{"refund.*", "case.created"} }},
		{"target url", "target.config.url",
			&hookwirev1.Subscription{Target: &hookwirev1.Target{Config: &structpb.Struct{Fields: map[string]*structpb.Value{"url": structpb.NewStringValue("https://new.example.com/hook")}}}},
			`{"target":{"config":{"url":"https://new.example.com/hook"}}}`,
			func(s *hookwirev1.Subscription) { cfgURL(s, "https://new.example.com/hook") }},
		{"target timeout", "target.timeout", &hookwirev1.Subscription{Target: &hookwirev1.Target{Timeout: durationpb.New(5 * time.Second)}}, `{"target":{"timeout":"5s"}}`,
			func(s *hookwirev1.Subscription) { s.Target.Timeout = durationpb.New(5 * time.Second) }},
		{"target headers", "target.headers",
			&hookwirev1.Subscription{Target: &hookwirev1.Target{Headers: map[string]string{"Authorization": catalogRedacted, "X-New": "v"}}},
			`{"target":{"headers":{"Authorization":"<redacted>","X-New":"v"}}}`,
			func(s *hookwirev1.Subscription) {
				s.Target.Headers = map[string]string{"Authorization": catalogRedacted, "X-New": catalogRedacted}
			}},
		{"metadata", "metadata", &hookwirev1.Subscription{Metadata: map[string]string{"owner": "ops"}}, `{"metadata":{"owner":"ops"}}`,
			func(s *hookwirev1.Subscription) { s.Metadata = map[string]string{"owner": "ops"} }},
		{"metadata cleared", "metadata", &hookwirev1.Subscription{}, `{"metadata":{}}`,
			func(s *hookwirev1.Subscription) { s.Metadata = nil }},
		{"filter", "filter", &hookwirev1.Subscription{Filter: "payload.amount > 5"}, `{"filter":"payload.amount > 5"}`,
			func(s *hookwirev1.Subscription) { s.Filter = "payload.amount > 5" }},
		{"retry policy replaced", "retry_policy",
			&hookwirev1.Subscription{RetryPolicy: &hookwirev1.RetryPolicy{Policy: &hookwirev1.RetryPolicy_Schedule{Schedule: &hookwirev1.RetrySchedule{Delays: []*durationpb.Duration{durationpb.New(time.Second), durationpb.New(2 * time.Second)}}}}},
			`{"retry_policy":{"schedule":{"delays":["1s","2s"]}}}`,
			func(s *hookwirev1.Subscription) {
				s.RetryPolicy = &hookwirev1.RetryPolicy{Policy: &hookwirev1.RetryPolicy_Schedule{Schedule: &hookwirev1.RetrySchedule{Delays: []*durationpb.Duration{durationpb.New(time.Second), durationpb.New(2 * time.Second)}}}}
			}},
		{"retry base", "retry_policy.exponential.base",
			&hookwirev1.Subscription{RetryPolicy: &hookwirev1.RetryPolicy{Policy: &hookwirev1.RetryPolicy_Exponential{Exponential: &hookwirev1.ExponentialBackoff{Base: durationpb.New(2 * time.Second)}}}},
			`{"retry_policy":{"exponential":{"base":"2s"}}}`,
			func(s *hookwirev1.Subscription) {
				s.GetRetryPolicy().GetExponential().Base = durationpb.New(2 * time.Second)
			}},
		{"rate limit", "flow_control.rate_per_second", &hookwirev1.Subscription{FlowControl: &hookwirev1.FlowControl{RatePerSecond: 7}}, `{"flow_control":{"rate_per_second":7}}`,
			func(s *hookwirev1.Subscription) { s.FlowControl.RatePerSecond = 7 }},
		{"max in flight", "flow_control.max_in_flight", &hookwirev1.Subscription{FlowControl: &hookwirev1.FlowControl{MaxInFlight: 2}}, `{"flow_control":{"max_in_flight":2}}`,
			func(s *hookwirev1.Subscription) { s.FlowControl.MaxInFlight = 2 }},
		{"circuit breaker", "circuit_breaker.consecutive_failures", &hookwirev1.Subscription{CircuitBreaker: &hookwirev1.CircuitBreaker{ConsecutiveFailures: 3}}, `{"circuit_breaker":{"consecutive_failures":3}}`,
			func(s *hookwirev1.Subscription) { s.CircuitBreaker.ConsecutiveFailures = 3 }},
		{"agent selector", "agent_selector", &hookwirev1.Subscription{AgentSelector: "region=eu"}, `{"agent_selector":"region=eu"}`,
			func(s *hookwirev1.Subscription) { s.AgentSelector = "region=eu" }},
		{"two fields", "description,flow_control.burst", &hookwirev1.Subscription{Description: "two", FlowControl: &hookwirev1.FlowControl{Burst: 3}}, `{"description":"two","flow_control":{"burst":3}}`,
			func(s *hookwirev1.Subscription) { s.Description, s.FlowControl.Burst = "two", 3 }},
	}
	for _, tc := range cases {
		for _, via := range []string{"gRPC", "REST with mask", "REST body"} {
			name := tc.name + " over " + via
			before := c.create(fullSubscription())
			var (
				resp *hookwirev1.Subscription
				err  error
			)
			switch via {
			case "gRPC":
				resp, err = c.grpc(before.GetId(), tc.mask, tc.sub)
			case "REST with mask":
				resp, _, err = c.rest(before.GetId(), tc.mask, tc.body)
			default:
				resp, _, err = c.rest(before.GetId(), "", tc.body)
			}
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			after := c.get(before.GetId())
			want := proto.Clone(before).(*hookwirev1.Subscription)
			tc.want(want)
			want.UpdateTime = after.GetUpdateTime()
			if !after.GetUpdateTime().AsTime().After(before.GetUpdateTime().AsTime()) {
				t.Errorf("%s: update_time %v, want after %v", name, after.GetUpdateTime().AsTime(), before.GetUpdateTime().AsTime())
			}
			if !proto.Equal(after, want) {
				t.Errorf("%s: stored\n%s\nwant\n%s", name, showSub(after), showSub(want))
			}
			if !proto.Equal(resp, after) {
				t.Errorf("%s: response\n%s\nis not what Get shows\n%s", name, showSub(resp), showSub(after))
			}
		}
	}

	// The stored header values survive a partial update: the agent still
	// receives them.
	sec := fullSubscription()
	sec.EventTypes, sec.Filter = []string{"secret.*"}, ""
	s := c.create(sec)
	if _, _, err := c.rest(s.GetId(), "", `{"description":"still secret"}`); err != nil {
		t.Fatal(err)
	}
	h.publish("secret.checked", `{}`)
	a := h.next()
	if hd := a.GetRequest().GetHeaders(); hd["authorization"] != "Bearer base-secret" || hd["x-team"] != "billing" {
		t.Fatalf("assignment headers after a description update: %v", hd)
	}
	h.agent.report(t, ok(a))
}

// TestUpdateSubscriptionMaskForms: no mask over gRPC (the set fields),
// "*" (full replacement), a whole target, removing a config key, and a
// subscription read with Get sent back unchanged.
func TestUpdateSubscriptionMaskForms(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{ValidateTarget: httpTargetCheck})
	c := &updateClient{t: t, h: h, subs: hookwirev1.NewSubscriptionServiceClient(h.conn)}
	check := func(what string, got *hookwirev1.Subscription, err error, before *hookwirev1.Subscription, change func(*hookwirev1.Subscription)) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		stored := c.get(before.GetId())
		want := proto.Clone(before).(*hookwirev1.Subscription)
		change(want)
		want.UpdateTime = stored.GetUpdateTime()
		if !proto.Equal(stored, want) {
			t.Errorf("%s: stored\n%s\nwant\n%s", what, showSub(stored), showSub(want))
		}
		if !proto.Equal(got, stored) {
			t.Errorf("%s: response\n%s\nis not what Get shows\n%s", what, showSub(got), showSub(stored))
		}
	}

	// gRPC without a mask: the fields set in the request.
	before := c.create(fullSubscription())
	got, err := c.grpc(before.GetId(), "", &hookwirev1.Subscription{Description: "y", FlowControl: &hookwirev1.FlowControl{RatePerSecond: 9}})
	check("gRPC without a mask", got, err, before, func(s *hookwirev1.Subscription) {
		s.Description, s.FlowControl.RatePerSecond = "y", 9
	})

	// "*" replaces every field that can change; unset ones are cleared,
	// and the transport (left unset) is kept.
	replace := func(s *hookwirev1.Subscription) {
		cfg, _ := structpb.NewStruct(map[string]any{"url": "https://star.example.com/hook"})
		*s = hookwirev1.Subscription{Id: s.Id, Tenant: s.Tenant, EventTypes: []string{"case.a"},
			Target: &hookwirev1.Target{Transport: "http", Config: cfg}, Status: s.Status, CreateTime: s.CreateTime,
			SignatureScheme: s.SignatureScheme, SigningPublicKey: s.SigningPublicKey}
	}
	body := `{"event_types":["case.a"],"target":{"config":{"url":"https://star.example.com/hook"}}}`
	before = c.create(fullSubscription())
	got, _, err = c.rest(before.GetId(), "*", body)
	check("REST *", got, err, before, replace)
	before = c.create(fullSubscription())
	star := &hookwirev1.Subscription{}
	if err := protojson.Unmarshal([]byte(body), star); err != nil {
		t.Fatal(err)
	}
	got, err = c.grpc(before.GetId(), "*", star)
	check("gRPC *", got, err, before, replace)

	// A whole target with the mask "target": its fields not sent are
	// cleared (the headers too), the transport kept.
	for _, via := range []string{"gRPC", "REST"} {
		before = c.create(fullSubscription())
		body := `{"target":{"config":{"url":"https://whole.example.com/hook"},"timeout":"3s"}}`
		if via == "gRPC" {
			sub := &hookwirev1.Subscription{}
			if err := protojson.Unmarshal([]byte(body), sub); err != nil {
				t.Fatal(err)
			}
			got, err = c.grpc(before.GetId(), "target", sub)
		} else {
			got, _, err = c.rest(before.GetId(), "target", body)
		}
		check("whole target over "+via, got, err, before, func(s *hookwirev1.Subscription) {
			cfg, _ := structpb.NewStruct(map[string]any{"url": "https://whole.example.com/hook"})
			s.Target = &hookwirev1.Target{Transport: "http", Config: cfg, Timeout: durationpb.New(3 * time.Second)}
		})
	}

	// A config key named in the mask but absent from the request is
	// removed; the other keys stay.
	before = c.create(fullSubscription())
	got, _, err = c.rest(before.GetId(), "target.config.headers", `{"target":{"config":{}}}`)
	check("remove a config key", got, err, before, func(s *hookwirev1.Subscription) { delete(s.Target.Config.Fields, "headers") })

	// A subscription read with Get and sent back unchanged, as it is (the
	// fields that cannot change have their values; the output-only ones
	// are ignored) and with "*", changes nothing but update_time; header
	// values stay as stored.
	for _, mask := range []string{"", "*"} {
		before = c.create(fullSubscription())
		data, code := h.restRaw("GET", "/v1/tenants/acme/subscriptions/"+before.GetId(), "", nil)
		if code != http.StatusOK || !strings.Contains(string(data), `"circuit_state"`) {
			t.Fatalf("GET: HTTP %d %s", code, data)
		}
		got, _, err = c.rest(before.GetId(), mask, string(data))
		check(fmt.Sprintf("Get sent back (mask %q)", mask), got, err, before, func(*hookwirev1.Subscription) {})
	}

	// A partial retry policy change that leaves the result invalid is
	// refused with the field that is now wrong.
	sched := fullSubscription()
	sched.RetryPolicy = &hookwirev1.RetryPolicy{Policy: &hookwirev1.RetryPolicy_Schedule{Schedule: &hookwirev1.RetrySchedule{Delays: []*durationpb.Duration{durationpb.New(time.Second)}}}}
	before = c.create(sched)
	_, code, err := c.rest(before.GetId(), "", `{"retry_policy":{"exponential":{"base":"2s"}}}`)
	if code != http.StatusBadRequest || !strings.Contains(status.Convert(err).Message(), "subscription.retry_policy.exponential.max_attempts") {
		t.Errorf("exponential base over a schedule: HTTP %d %v", code, err)
	}
	if s := c.get(before.GetId()); !proto.Equal(s, before) {
		t.Errorf("refused update changed the subscription: %s", showSub(s))
	}
}

// TestUpdateSubscriptionRefusals: fields that cannot change, unknown
// paths and invalid values are InvalidArgument (HTTP 400) naming the
// field, over gRPC and REST alike, and change nothing.
func TestUpdateSubscriptionRefusals(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{ValidateTarget: httpTargetCheck})
	c := &updateClient{t: t, h: h, subs: hookwirev1.NewSubscriptionServiceClient(h.conn)}
	before := c.create(fullSubscription())
	fromJSON := func(body string) *hookwirev1.Subscription {
		s := &hookwirev1.Subscription{}
		if err := protojson.Unmarshal([]byte(body), s); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		return s
	}
	cases := []struct {
		name, mask, body, msg string
		noMaskToo             bool // REST without a mask says the same
	}{
		{"transport", "target.transport", `{"target":{"transport":"nats"}}`,
			`target.transport cannot be changed: create a new subscription`, true},
		{"transport in a whole target", "target", `{"target":{"transport":"nats","config":{"url":"https://x.example.com"}}}`,
			`target.transport cannot be changed`, true},
		{"tenant", "tenant", `{"tenant":"globex"}`, `tenant cannot be changed`, true},
		{"create time", "create_time", `{"create_time":"2020-01-01T00:00:00Z"}`, `create_time cannot be changed`, true},
		{"ordered", "ordered", `{"ordered":true}`, `ordered cannot be changed after creation`, true},
		{"status", "status", `{"status":"SUBSCRIPTION_STATUS_PAUSED"}`, `:pause or :resume`, true},
		{"signature scheme", "signature_scheme", `{"signature_scheme":"SIGNATURE_SCHEME_ED25519"}`, `rotateSecret`, true},
		{"signing secret", "signing_secret", `{"signing_secret":"whsec_AAAA"}`, `signing_secret cannot be set`, true},
		{"unknown field", "nope", `{"description":"x"}`, `update_mask path "nope": Subscription has no field "nope"`, false},
		{"unknown nested field", "target.nope", `{"description":"x"}`, `update_mask path "target.nope": target has no field "nope"`, false},
		{"inside a map", "metadata.owner", `{"metadata":{"owner":"x"}}`, `update_mask path "metadata.owner": metadata is replaced as a whole`, false},
		{"star and more", "*,description", `{"description":"x"}`, `"*" (replace every field) must be the only path`, false},
		{"empty event types", "event_types", `{"event_types":[]}`, `subscription.event_types: must contain at least 1 item(s)`, true},
		{"bad url", "target.config.url", `{"target":{"config":{"url":"ftp://x"}}}`, `must use http or https`, true},
		{"bad selector", "agent_selector", `{"agent_selector":"a in"}`, `invalid`, true},
		{"reserved header", "target.headers", `{"target":{"headers":{"webhook-id":"x"}}}`, `subscription.target.headers`, true},
		{"mask for a missing header", "target.headers", `{"target":{"headers":{"X-Other":"<redacted>"}}}`, `send the header's real value`, true},
	}
	for _, tc := range cases {
		_, err := c.grpc(before.GetId(), tc.mask, fromJSON(tc.body))
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.msg) {
			t.Errorf("%s over gRPC: %v, want InvalidArgument with %q", tc.name, err, tc.msg)
		}
		masks := []string{tc.mask}
		if tc.noMaskToo {
			masks = append(masks, "")
		}
		for _, mask := range masks {
			_, code, err := c.rest(before.GetId(), mask, tc.body)
			if code != http.StatusBadRequest || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Errorf("%s over REST (mask %q): HTTP %d %v, want 400 with %q", tc.name, mask, code, err, tc.msg)
			}
		}
	}
	// Nothing to update, and update_mask sent in the body.
	for _, tc := range []struct{ body, msg string }{
		{`{}`, "nothing to update"},
		{``, "nothing to update"},
		{`{"description":"x","update_mask":"description"}`, "pass it as the query parameter"},
	} {
		_, code, err := c.rest(before.GetId(), "", tc.body)
		if code != http.StatusBadRequest || !strings.Contains(status.Convert(err).Message(), tc.msg) {
			t.Errorf("REST body %s: HTTP %d %v, want 400 with %q", tc.body, code, err, tc.msg)
		}
	}
	if _, err := c.grpc(before.GetId(), "", &hookwirev1.Subscription{}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "nothing to update") {
		t.Errorf("gRPC with nothing set and no mask: %v", err)
	}
	if _, err := c.subs.UpdateSubscription(h.ctx(), &hookwirev1.UpdateSubscriptionRequest{Tenant: "acme"}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "subscription is required") {
		t.Errorf("gRPC without a subscription: %v", err)
	}
	if _, _, err := c.rest("sub_nope", "description", `{"description":"x"}`); status.Code(err) != codes.NotFound {
		t.Errorf("unknown subscription: %v", err)
	}
	if s := c.get(before.GetId()); !proto.Equal(s, before) {
		t.Errorf("refused updates changed the subscription:\n%s\nwas\n%s", showSub(s), showSub(before))
	}
}

// TestUpdateSubscriptionConcurrentPartialUpdates: updates of different
// fields racing each other never undo one another; each field ends with
// the last value its writer sent.
func TestUpdateSubscriptionConcurrentPartialUpdates(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{ValidateTarget: httpTargetCheck})
	c := &updateClient{t: t, h: h, subs: hookwirev1.NewSubscriptionServiceClient(h.conn)}
	sub := c.create(fullSubscription())
	const rounds = 15
	writers := []struct {
		mask string
		sub  func(i int) *hookwirev1.Subscription
	}{
		{"description", func(i int) *hookwirev1.Subscription { return &hookwirev1.Subscription{Description: fmt.Sprint("d", i)} }},
		{"metadata", func(i int) *hookwirev1.Subscription {
			return &hookwirev1.Subscription{Metadata: map[string]string{"round": fmt.Sprint(i)}}
		}},
		{"flow_control.burst", func(i int) *hookwirev1.Subscription {
			return &hookwirev1.Subscription{FlowControl: &hookwirev1.FlowControl{Burst: int32(i + 1)}}
		}},
		{"target.config.url", func(i int) *hookwirev1.Subscription {
			return &hookwirev1.Subscription{Target: &hookwirev1.Target{Config: &structpb.Struct{Fields: map[string]*structpb.Value{"url": structpb.NewStringValue(fmt.Sprintf("https://r%d.example.com", i))}}}}
		}},
	}
	errs := make(chan error, len(writers)*rounds)
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Go(func() {
			for i := range rounds {
				// Aborted asks to try again (a write lost the race for
				// the record too often); bounded, so a livelock fails.
				var err error
				for range 20 {
					if _, err = c.grpc(sub.GetId(), w.mask, w.sub(i)); status.Code(err) != codes.Aborted {
						break
					}
				}
				if err != nil {
					errs <- fmt.Errorf("%s round %d: %w", w.mask, i, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := c.get(sub.GetId())
	last := rounds - 1
	if got.GetDescription() != fmt.Sprint("d", last) || got.GetMetadata()["round"] != fmt.Sprint(last) ||
		got.GetFlowControl().GetBurst() != int32(last+1) || got.GetTarget().GetConfig().GetFields()["url"].GetStringValue() != fmt.Sprintf("https://r%d.example.com", last) {
		t.Fatalf("after concurrent updates: %s", showSub(got))
	}
	// The fields no writer touched kept their values.
	if got.GetFlowControl().GetRatePerSecond() != 100 || got.GetTarget().GetConfig().GetFields()["headers"] == nil ||
		got.GetTarget().GetHeaders()["Authorization"] != catalogRedacted || got.GetFilter() != "payload.amount > 1" {
		t.Fatalf("untouched fields changed: %s", showSub(got))
	}
}
