// Package natstransport is Hookwire's built-in "nats" transport: it
// publishes a prepared webhook to a NATS subject, either as a core NATS
// publish or through JetStream, and classifies what happened.
//
// It owns the nats target configuration, one pooled connection per distinct
// url (nats.go reconnects it; a closed one is replaced), and the mapping from
// NATS and JetStream answers to delivery outcomes.
//
// # Target configuration
//
//	url        required  NATS server URL: nats://, tls://, ws:// or wss://,
//	                     or a comma-separated list of them (a cluster).
//	                     Credentials go in the URL (nats://user:pass@host or
//	                     nats://token@host); a distinct url gets its own
//	                     connection.
//	subject    required  subject to publish to; no wildcards (* >), no
//	                     whitespace, no empty tokens.
//	jetstream  optional  false (default): core publish, confirmed with a
//	                     round trip to the server, so SUCCESS means the
//	                     server received it — not that anyone was
//	                     subscribed. true: JetStream publish, SUCCESS only
//	                     when a stream has stored it and acknowledged.
//
// Unknown fields are refused.
//
// # Message
//
// The body is the payload byte-for-byte. The request's headers (webhook-id,
// webhook-timestamp, webhook-signature) travel as NATS headers under exactly
// those names, with content-type (application/json when the event has
// none). With JetStream, Nats-Msg-Id is set to the webhook-id, so within
// the stream's duplicate window a retry of an attempt that was stored (but
// whose acknowledgement was lost) is dropped by the stream and reported as
// SUCCESS — the same id also de-duplicates manual replays in that window.
//
// When tracing is on, the attempt's W3C trace context travels as the
// NATS headers traceparent and tracestate (tracestate only when there is
// one), so a consumer's span can join the publisher's trace; with tracing
// off neither header is set.
//
// # Egress
//
// Every connection, reconnects included, goes through the SDK's guarded
// dialer (sdk.Dialer) under the agent's egress policy (WithEgress;
// sdk.AgentEgress by default): no loopback, private, link-local... address
// unless the agent allows it with --allow-cidr. A refused address is
// REJECTED with a message naming the --allow-cidr that would allow it. In
// a url listing several servers a refused one is never used; the attempt is
// REJECTED only when every server is refused.
//
// # Outcomes
//
//	server received it (core) / stream acknowledged it   SUCCESS (duplicates too)
//	dial refused, DNS, connection broken or reconnecting  CONNECTION_ERROR
//	address refused by the agent's egress policy          REJECTED
//	attempt deadline (req.Timeout / ctx)                  TIMEOUT
//	JetStream 503/429 (stream full with discard new,
//	  JetStream unavailable), stream exists but did not
//	  answer (no responders)                              THROTTLED
//	bad configuration, credentials refused, publish
//	  permission denied, no stream captures the subject,
//	  JetStream disabled, larger than max_payload or the
//	  stream's max message size, other JetStream 400/403  REJECTED
//	any other JetStream answer                            FAILED
//
// A JetStream publish the server denies for lack of permission gets no
// answer and ends as TIMEOUT; a core publish denial is detected (the server
// reports it before the confirming round trip completes).
package natstransport
