// Package sdk is the public SDK for Hookwire transport plugins.
//
// A transport takes one fully prepared delivery (target configuration, body
// bytes, content type, headers already signed by the control plane) and
// makes one attempt to hand it to a target: an HTTP endpoint, a message
// broker, anything. The Hookwire agent runs each transport as a separate
// process through hashicorp/go-plugin (gRPC only) and pipelines many
// deliveries through one long-lived stream to it. Built-in transports (http)
// run exactly the same way as third-party ones.
//
// This package owns the plugin contract: the Transport interface, the
// go-plugin handshake and version negotiation, the gRPC adapters on both
// sides, and Serve. It must not depend on anything in the agent or the
// control plane, because outside authors import it.
//
// # Writing a transport
//
// Implement Transport and call Serve from main:
//
//	package main
//
//	import (
//		"context"
//		"fmt"
//		"os"
//
//		transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
//		"github.com/hookwire/hookwire/plugins/sdk"
//		"google.golang.org/protobuf/types/known/structpb"
//	)
//
//	type logTransport struct{}
//
//	func (logTransport) Describe(context.Context) (sdk.Info, error) {
//		return sdk.Info{
//			Name:         "log",
//			Version:      "0.1.0",
//			APIVersions:  []uint32{sdk.APIVersion},
//			TargetSchema: `{"type":"object","properties":{"prefix":{"type":"string"}}}`,
//		}, nil
//	}
//
//	func (logTransport) Validate(_ context.Context, cfg *structpb.Struct) ([]string, error) {
//		if v, ok := cfg.GetFields()["prefix"]; ok {
//			if _, isString := v.GetKind().(*structpb.Value_StringValue); !isString {
//				return []string{"prefix must be a string"}, nil
//			}
//		}
//		return nil, nil
//	}
//
//	func (logTransport) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
//		prefix := req.GetConfig().GetFields()["prefix"].GetStringValue()
//		if _, err := fmt.Fprintf(os.Stderr, "%s%s %s\n", prefix, req.GetDeliveryId(), req.GetBody()); err != nil {
//			return &transportv1.DeliveryResult{
//				Outcome: transportv1.Outcome_OUTCOME_CONNECTION_ERROR,
//				Error:   err.Error(),
//			}
//		}
//		return &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_SUCCESS}
//	}
//
//	func main() { sdk.Serve(logTransport{}) }
//
// Build it, put the binary in the agent's plugin directory (optionally
// pinning its SHA-256), and subscriptions can name the "log" transport.
//
// # What the host expects from Deliver
//
//   - Deliver is called concurrently, up to MaxConcurrentDeliveries at once
//     per plugin process; it must be safe for concurrent use.
//   - ctx carries the attempt's deadline (the request's timeout, or
//     DefaultTimeout). Return by then: a late answer is thrown away and the
//     attempt counts as a timeout.
//   - Never return an error or panic to signal failure: classify it as an
//     Outcome. SUCCESS, GONE (never retry, the subscription is disabled),
//     THROTTLED (retry later, honour RetryAfter), TIMEOUT, CONNECTION_ERROR
//     (nothing or not everything reached the target), FAILED (the target
//     refused it), REJECTED (the configuration can never work). A panic is
//     recovered and reported as FAILED, but it is a bug.
//   - Send the body byte-for-byte and the headers as given: they carry the
//     control plane's signature.
//   - Re-check the configuration in Deliver (cheaply, or cache the parsed
//     form): a configuration that fails Validate must yield REJECTED, never
//     a panic.
//
// # Egress
//
// Subscriptions say where a transport connects, so a transport must not
// become a way into the agent's host or network. The agent passes its
// egress policy (its --allow-cidr networks) to every plugin in EgressEnv;
// AgentEgress reads it and Serve refuses to start when it does not parse.
// Make every connection through a Dialer built from it (NewDialer): it
// refuses loopback, private, link-local and other internal addresses
// (DeniedRanges) after resolving names itself, unless the policy allows
// them, with a *DeniedAddressError whose message names the --allow-cidr
// that would allow the address. Report that as OUTCOME_REJECTED.
//
// # Logging
//
// After Serve starts, whatever the plugin writes to os.Stderr (the log
// package, slog's default logger, fmt.Fprintln(os.Stderr, ...)) is carried to
// the agent, which logs each line at warn level under the plugin's name.
// Output on os.Stdout is not kept: stdout belongs to go-plugin. Log
// failures worth an operator's attention, not every delivery.
//
// # Profiling
//
// With HOOKWIRE_PLUGIN_CPUPROFILE=DIR in the agent's environment (plugins
// inherit it), every plugin built on Serve records a Go CPU profile of its
// whole life and writes DIR/<transport>-<pid>.cpu.pprof when the agent
// shuts it down (agent exit or drain); read it with `go tool pprof`. A
// plugin killed with SIGKILL writes nothing. The agent itself serves its
// profiles with `hookwire agent --metrics-addr ADDR --pprof`.
//
// # Protocol and versions
//
// The go-plugin handshake (Handshake) checks a magic cookie and negotiates
// the transport API version: VersionedPlugins maps each version to a plugin
// set, and go-plugin picks the highest version both sides list. Describe
// then reports the versions the plugin implements as a second check.
// APIVersion is the newest version this SDK speaks.
//
// On the wire (package transportv1) the host opens one bidirectional Deliver
// stream per plugin process and sends DeliverRequests with ids it chooses;
// the plugin answers each with exactly one DeliverResponse carrying the same
// id, in any order. Client is the host side of that protocol (it also
// implements Transport, so an agent cannot tell a plugin from an in-process
// transport); NewServer is the plugin side. If the stream breaks, every
// delivery in flight on it comes back as CONNECTION_ERROR, which the control
// plane retries.
//
// Client opens the Deliver stream with the vtproto codec (package vtcodec:
// vtprotobuf's generated encoders, content-subtype "vtproto"); a plugin's
// gRPC server picks it by that subtype because this package registers it.
// The bytes are ordinary protobuf, so hosts and plugins built with an SDK
// from before the codec still work with newer ones in either direction.
//
// # Testing a transport
//
// Call the Transport directly for unit tests. To exercise it through the
// real gRPC adapters, use plugin.TestPluginGRPCConn with
// VersionedPlugins(t)[APIVersion] and dispense PluginName: you get a *Client
// talking to your transport over a local socket. ServeConfig returns the
// go-plugin configuration Serve uses, for tests that serve in-process
// (ServeConfig.Test) and reattach.
package sdk
