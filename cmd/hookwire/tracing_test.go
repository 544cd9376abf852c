package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestSetupTracingFromEnvironment(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name    string
		env     map[string]string
		on      bool
		wantErr string
	}{
		{name: "off by default", env: map[string]string{}},
		{name: "none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}},
		{name: "sdk disabled wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "console,zipkin"}, wantErr: `unknown exporter "zipkin"`},
		{name: "unsupported protocol", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, wantErr: "use http/protobuf or grpc"},
		{name: "endpoint alone means otlp", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, on: true},
		{name: "otlp over grpc", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, on: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
				t.Setenv(k, tc.env[k])
			}
			tp, shutdown, err := setupTracing(context.Background(), log, "hookwire-test", &bytes.Buffer{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer shutdown()
			if (tp != nil) != tc.on {
				t.Fatalf("provider %v, want on=%v", tp, tc.on)
			}
		})
	}
}

// The console exporter writes the spans, with the service name taken from
// OTEL_SERVICE_NAME, when shutdown flushes them.
func TestSetupTracingConsoleFlushesAtShutdown(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	t.Setenv("OTEL_SERVICE_NAME", "edge-agent-7")
	t.Setenv("OTEL_SDK_DISABLED", "")
	var out bytes.Buffer
	tp, shutdown, err := setupTracing(context.Background(), slog.New(slog.DiscardHandler), "hookwire-agent", &out)
	if err != nil || tp == nil {
		t.Fatalf("setup: %v, %v", tp, err)
	}
	_, span := tp.Tracer("test").Start(context.Background(), "send order.created")
	span.End()
	shutdown()
	for _, want := range []string{`"Name":"send order.created"`, `edge-agent-7`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("console output lacks %s:\n%s", want, out.String())
		}
	}
}
