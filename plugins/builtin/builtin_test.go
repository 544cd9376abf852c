package builtin_test

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hookwire/hookwire/plugins/builtin"
)

func TestRegistry(t *testing.T) {
	names := builtin.Names()
	if want := []string{"amqp", "http", "mqtt", "nats", "redis"}; !slices.Equal(names, want) {
		t.Fatalf("Names() = %v, want %v", names, want)
	}
	if f, ok := builtin.SecretFields("file"); ok || f != nil {
		t.Errorf("SecretFields of a transport that is no built-in = %v, %v", f, ok)
	}
	for _, name := range names {
		tr, ok := builtin.New(name)
		if !ok || tr == nil {
			t.Fatalf("New(%q) = %v, %v", name, tr, ok)
		}
		info, err := tr.Describe(context.Background())
		if err != nil {
			t.Fatalf("describe %s: %v", name, err)
		}
		if info.Name != name {
			t.Errorf("built-in %q describes itself as %q", name, info.Name)
		}
		var schema struct {
			Type                 string         `json:"type"`
			Properties           map[string]any `json:"properties"`
			Required             []string       `json:"required"`
			AdditionalProperties *bool          `json:"additionalProperties"`
		}
		if err := json.Unmarshal([]byte(info.TargetSchema), &schema); err != nil {
			t.Errorf("built-in %q: target schema is not JSON: %v", name, err)
			continue
		}
		if schema.Type != "object" || len(schema.Properties) == 0 || schema.AdditionalProperties == nil || *schema.AdditionalProperties {
			t.Errorf("built-in %q: target schema should be a closed object with properties: %+v", name, schema)
		}
		for _, req := range schema.Required {
			if _, ok := schema.Properties[req]; !ok {
				t.Errorf("built-in %q: schema requires %q but does not describe it", name, req)
			}
		}
		// Broker URLs carry credentials: the control plane must seal them.
		wantSecret := []string{"url"}
		if name == "http" {
			wantSecret = nil // credentials go in the sealed target headers
		}
		if got := info.SecretFields(); !slices.Equal(got, wantSecret) {
			t.Errorf("built-in %q: secret config fields %v, want %v", name, got, wantSecret)
		}
		if got, ok := builtin.SecretFields(name); !ok || !slices.Equal(got, wantSecret) {
			t.Errorf("SecretFields(%q) = %v, %v; want %v", name, got, ok, wantSecret)
		}
		if len(info.ConfigFields) != len(schema.Properties) {
			t.Errorf("built-in %q: %d config fields for %d schema properties", name, len(info.ConfigFields), len(schema.Properties))
		}
		// An empty configuration is never valid and says what is missing.
		problems, err := tr.Validate(context.Background(), &structpb.Struct{})
		if err != nil || len(problems) == 0 {
			t.Errorf("built-in %q: Validate(empty) = %q, %v; want problems", name, problems, err)
		}
		if c, ok := tr.(io.Closer); ok {
			if err := c.Close(); err != nil {
				t.Errorf("built-in %q: Close: %v", name, err)
			}
		}
	}
	if _, ok := builtin.New("carrier-pigeon"); ok {
		t.Error(`New("carrier-pigeon") found a transport`)
	}
}

func TestServeUnknownName(t *testing.T) {
	err := builtin.Serve("carrier-pigeon")
	if err == nil || !strings.Contains(err.Error(), `"carrier-pigeon"`) || !strings.Contains(err.Error(), "http") {
		t.Errorf("Serve(unknown) = %v, want an error naming it and listing the built-ins", err)
	}
}
