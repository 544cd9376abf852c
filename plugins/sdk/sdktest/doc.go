// Package sdktest is the conformance harness for Hookwire transport
// plugins. Run it from a test of your transport: it checks that the
// transport keeps the contract the Hookwire agent relies on, both when
// called directly and through the real go-plugin gRPC boundary the agent
// uses (plugin.TestPluginGRPCConn with sdk.VersionedPlugins), so adapter
// problems such as results that do not survive the wire show up too.
//
// # Using it
//
// Give Run a constructor for your transport and Options that say how to
// reach a receiver your test controls:
//
//	func TestConformance(t *testing.T) {
//		sdktest.Run(t, func() sdk.Transport { return mytransport.New() }, sdktest.Options{
//			Target: func(t *testing.T) sdktest.Receiver {
//				rec := sdktest.NewRecorder()
//				addr := startTestBroker(t, rec.Add) // records what arrives
//				cfg, _ := structpb.NewStruct(map[string]any{"address": addr})
//				return sdktest.Receiver{Config: cfg, Arrived: rec.Arrived}
//			},
//			InvalidConfig: mustStruct(map[string]any{"address": 42}),
//		})
//	}
//
// Target is called once per check that delivers, so checks never see each
// other's deliveries. Arrived must return the deliveries that reached the
// receiver, waiting until at least n have arrived or ctx ends; Recorder
// implements that for receivers that report arrivals through a callback.
// A transport whose deliveries are visible as soon as Deliver returns (a
// file, a database row) can read them back directly instead.
//
// # What it checks
//
// Each check runs twice, once calling the transport directly and once
// through gRPC, as subtests named direct/... and grpc/...:
//
//   - Describe returns a name subscriptions can use (a lower-case letter,
//     then lower-case letters, digits, '-' or '_'), a version, the API
//     versions including sdk.APIVersion, and a target schema that is a
//     JSON object.
//   - Validate accepts the receiver's configuration with no problems and
//     reports problems, not an error, for InvalidConfig; an empty or nil
//     configuration gives problems or none, never an error or a panic.
//   - Deliver of a valid request returns SUCCESS, and exactly one delivery
//     arrives with the body byte-for-byte (a JSON document whose spacing,
//     escapes and number formatting any re-encoding would change) and the
//     webhook-id, webhook-timestamp and webhook-signature headers exactly
//     as sent. If the receiver reports a content type, it must be the
//     request's.
//   - Concurrent deliveries (Options.Concurrency, default 50) all return
//     SUCCESS and each arrives exactly once.
//   - An attempt whose deadline has already passed returns at once and is
//     not reported as SUCCESS: the agent discards late results and counts
//     the attempt as timed out, so delivering it anyway makes a duplicate.
//   - With Options.Unresponsive (a target that accepts a delivery and never
//     answers), a short timeout and a cancelled context each end the
//     attempt promptly with a failure outcome, never a hang or SUCCESS.
//   - With InvalidConfig, Deliver returns REJECTED with an error message.
//   - Deliver with a nil or empty configuration does not panic.
//   - No result is ever nil or OUTCOME_UNSPECIFIED.
//
// Transports that start goroutines should also run go.uber.org/goleak in
// TestMain: the harness closes the clients it creates, so anything left
// running belongs to the transport.
package sdktest
