// Package mqtttransport is Hookwire's built-in "mqtt" transport: it
// publishes a prepared webhook to an MQTT 5 broker at QoS 1 or 2 and
// classifies the broker's acknowledgement.
//
// It owns the mqtt target configuration, one pooled MQTT 5 connection per
// distinct url (clean session, random client id; a connection that drops
// is replaced on the next delivery), and the mapping from CONNACK and
// PUBACK/PUBREC reason codes to delivery outcomes. It uses the Eclipse
// paho.golang client.
//
// # Why MQTT 5 only
//
// MQTT 3.1.1 messages have no headers, so the Standard Webhooks signature
// (webhook-id, webhook-timestamp, webhook-signature) could only travel by
// wrapping the body, which would break "the body byte-for-byte". MQTT 5
// user properties carry them as they are. A broker that only speaks 3.1.1
// refuses the connection, and the attempt is REJECTED with a message that
// says so. (Mosquitto 1.6+, EMQX, HiveMQ and VerneMQ speak MQTT 5.)
//
// # Target configuration
//
//	url     required  mqtt://[user:password@]host:1883 (tcp:// too) or
//	                  mqtts://host:8883 (ssl://, tls://) for TLS with the
//	                  system's roots. A distinct url gets its own connection.
//	topic   required  topic to publish to: no wildcards (+ #), not
//	                  starting with $, valid UTF-8.
//	qos     optional  1 (default): succeeds on PUBACK. 2: succeeds on
//	                  PUBCOMP. 0 is refused: it is never acknowledged.
//	retain  optional  false (default); true asks the broker to retain it.
//
// Unknown fields are refused.
//
// # Message
//
// The payload is the body byte-for-byte. The content type (the event's,
// application/json when it has none) goes in the MQTT 5 Content Type
// property, and the request's headers as user properties under exactly
// their names, sorted: webhook-id, webhook-signature, webhook-timestamp.
//
// When tracing is on, the attempt's W3C trace context travels as two
// more user properties, traceparent and tracestate (tracestate only when
// there is one), sorted with the others (so before webhook-id), so a
// consumer's span can join the publisher's trace; with tracing off neither
// is set.
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
//	PUBACK / PUBCOMP with a success code (0x10 "no matching
//	  subscribers" included: the broker accepted it)       SUCCESS
//	dial refused, DNS, TLS, connection lost before the ack,
//	  CONNACK 0x88 server unavailable                      CONNECTION_ERROR
//	attempt deadline (req.Timeout / ctx)                   TIMEOUT
//	0x97 quota exceeded, CONNACK 0x89 busy / 0x9F rate     THROTTLED
//	bad configuration, CONNACK 0x84 (no MQTT 5), 0x86 bad
//	  credentials, 0x87 not authorized (connect or publish),
//	  0x90 topic refused, 0x99 payload format, larger than
//	  the broker's maximum packet size, qos or retain the
//	  broker does not support                              REJECTED
//	address refused by the agent's egress policy           REJECTED
//	any other failure reason code                          FAILED
package mqtttransport
