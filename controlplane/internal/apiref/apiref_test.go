package apiref

import (
	"bytes"
	"strings"
	"testing"
)

func TestLoadCoversTheAPI(t *testing.T) {
	ref, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	var publish *Method
	for _, s := range ref.Services {
		for i, m := range s.Methods {
			if m.GRPC == "/hookwire.v1.EventService/PublishEvent" {
				publish = &s.Methods[i]
			}
		}
	}
	if publish == nil {
		t.Fatal("EventService.PublishEvent not in the reference")
	}
	if len(publish.HTTP) == 0 || publish.HTTP[0].Verb != "POST" || publish.HTTP[0].Path != "/v1/tenants/{tenant}/events" {
		t.Errorf("PublishEvent REST bindings %+v", publish.HTTP)
	}
	if publish.Description == "" || publish.Request.Name != "PublishEventRequest" || !publish.Request.Local {
		t.Errorf("PublishEvent: %+v", publish)
	}
	var sub *Message
	for i, m := range ref.Messages {
		if m.Name == "Subscription" {
			sub = &ref.Messages[i]
		}
	}
	if sub == nil {
		t.Fatal("message Subscription missing")
	}
	found := false
	for _, f := range sub.Fields {
		if f.Name == "event_types" {
			found = true
			if f.Type.Text != "repeated string" || !strings.Contains(f.Description, "order.*") {
				t.Errorf("Subscription.event_types = %+v", f)
			}
		}
	}
	if !found {
		t.Error("Subscription.event_types missing")
	}

	var md, page bytes.Buffer
	if err := ref.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if err := ref.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| POST | `/v1/tenants/{tenant}/events` | [EventService.PublishEvent](#eventservicepublishevent) |", "#### EventService.PublishEvent", "### Subscription\n", "- gRPC: `/hookwire.v1.AgentService/Connect`", "REST: none (gRPC only)"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	for _, want := range []string{`<section class="rpc" id="eventservicepublishevent">`, `<code>/hookwire.v1.EventService/PublishEvent</code>`, `id="subscription"`} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", `src="http`, `href="http`, "@import", "url("} {
		if strings.Contains(page.String(), bad) {
			t.Errorf("HTML page contains %q: it must be self-contained", bad)
		}
	}
}
