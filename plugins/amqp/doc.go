// Package amqptransport is Hookwire's built-in "amqp" transport: it
// publishes a prepared webhook to an AMQP 0-9-1 exchange (RabbitMQ) with
// publisher confirms and classifies what happened.
//
// It owns the amqp target configuration, one pooled connection per distinct
// url (replaced when it dies) with a set of confirm-mode channels, and the
// mapping from the broker's answers to delivery outcomes. Each publish uses
// a channel exclusively until its confirm arrives, so a returned message or
// a channel error belongs to exactly one delivery; a channel that failed or
// timed out is closed, never reused.
//
// # Target configuration
//
//	url          required  amqp://user:password@host:5672/vhost, or amqps://
//	                       for TLS; a distinct url gets its own connection.
//	exchange     optional  exchange to publish to; it must exist (Hookwire
//	                       never declares anything). "" (default) is the
//	                       default exchange.
//	routing_key  optional  routing key; required with the default exchange,
//	                       where it names the queue.
//	mandatory    optional  true (default): a message no queue receives is
//	                       returned and the attempt is REJECTED. false: the
//	                       broker drops it and the attempt succeeds.
//
// Unknown fields are refused.
//
// # Message
//
// The body is sent byte-for-byte. The request's headers (webhook-id,
// webhook-timestamp, webhook-signature) go into the message's header table
// as strings under exactly those names. Properties: content_type (the
// event's, application/json when it has none), message_id = webhook-id,
// type = the event type, app_id = "hookwire", delivery_mode = persistent.
//
// When tracing is on, the attempt's W3C trace context goes into the
// header table too, as the strings traceparent and tracestate (tracestate
// only when there is one), so a consumer's span can join the publisher's
// trace; with tracing off neither header is set.
//
// # Egress
//
// Every connection, reconnects included, goes through the SDK's guarded
// dialer (sdk.Dialer) under the agent's egress policy (WithEgress;
// sdk.AgentEgress by default): no loopback, private, link-local... address
// unless the agent allows it with --allow-cidr. A refused address is
// REJECTED with a message naming the --allow-cidr that would allow it.
//
// # Outcomes
//
//	broker confirmed (ack), routed or mandatory=false      SUCCESS
//	dial refused, DNS, connection broken                   CONNECTION_ERROR
//	address refused by the agent's egress policy           REJECTED
//	attempt deadline (req.Timeout / ctx), no confirm yet   TIMEOUT
//	nack, connection blocked (memory/disk alarm),
//	  506 resource error, no free channel                  THROTTLED
//	bad configuration, credentials or vhost refused,
//	  exchange not found (404), access refused (403),
//	  precondition failed / too large (406, 311),
//	  unroutable with mandatory                            REJECTED
//	any other channel error                                FAILED
//
// A nack means the broker could not take responsibility for the message
// (typically a queue at its length limit with overflow reject-publish);
// it is retried later like any back-pressure.
package amqptransport
