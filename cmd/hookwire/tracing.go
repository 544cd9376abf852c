package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// tracingShutdownTimeout bounds the final flush of spans at exit.
const tracingShutdownTimeout = 5 * time.Second

// setupTracing builds a tracer provider from the standard OpenTelemetry
// environment variables. Tracing is off (nil provider, no-op shutdown)
// unless OTEL_TRACES_EXPORTER names an exporter, or is unset while an
// OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is; OTEL_SDK_DISABLED=true turns it
// off whatever else is set.
//
//	OTEL_TRACES_EXPORTER  otlp, console or none (comma-separated list)
//	OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL  http/protobuf (default) or grpc
//	OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT, ...  read by the OTLP exporters
//	OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES  the resource (default service name: service)
//	OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*  read by the SDK
//
// The console exporter writes to console (stderr), keeping stdout for the
// command's own output. shutdown flushes what is buffered.
func setupTracing(ctx context.Context, log *slog.Logger, service string, console io.Writer) (tp trace.TracerProvider, shutdown func(), err error) {
	noop := func() {}
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return nil, noop, nil
	}
	names := os.Getenv("OTEL_TRACES_EXPORTER")
	if strings.TrimSpace(names) == "" && (os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "") {
		names = "otlp"
	}
	var exporters []sdktrace.SpanExporter
	var used []string
	for _, name := range strings.Split(names, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		var exp sdktrace.SpanExporter
		switch name {
		case "", "none":
			continue
		case "otlp":
			exp, err = otlpExporter(ctx)
		case "console":
			exp, err = stdouttrace.New(stdouttrace.WithWriter(console))
		default:
			err = fmt.Errorf("OTEL_TRACES_EXPORTER=%q: unknown exporter %q; use otlp, console or none", names, name)
		}
		if err != nil {
			for _, e := range exporters {
				_ = e.Shutdown(ctx)
			}
			return nil, noop, err
		}
		exporters = append(exporters, exp)
		used = append(used, name)
	}
	if len(exporters) == 0 {
		return nil, noop, nil
	}
	// Later detectors win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override the default service name.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service), attribute.String("service.version", version)),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithFromEnv(),
	)
	if err != nil && res == nil {
		return nil, noop, fmt.Errorf("tracing resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	for _, e := range exporters {
		opts = append(opts, sdktrace.WithBatcher(e))
	}
	provider := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(provider)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "err", err) }))
	log.Info("tracing on", "exporters", strings.Join(used, ","), "service", serviceName(res, service))
	return provider, func() {
		ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
		defer cancel()
		if err := provider.Shutdown(ctx); err != nil {
			log.Warn("flush traces at exit", "err", err)
		}
	}, nil
}

// otlpExporter is the OTLP trace exporter for the configured protocol.
func otlpExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch strings.ToLower(strings.TrimSpace(protocol)) {
	case "", "http/protobuf":
		return otlptracehttp.New(ctx)
	case "grpc":
		return otlptracegrpc.New(ctx)
	default:
		return nil, errors.New("OTEL_EXPORTER_OTLP_PROTOCOL=" + protocol + " is not supported for traces: use http/protobuf or grpc")
	}
}

func serviceName(res *resource.Resource, fallback string) string {
	if v, ok := res.Set().Value("service.name"); ok {
		return v.AsString()
	}
	return fallback
}
