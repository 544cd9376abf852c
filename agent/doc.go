// Package agent is the Hookwire delivery agent runtime.
//
// An Agent dials out to the control plane, opens the AgentService.Connect
// stream and keeps it open: it announces itself (Hello), grants credit,
// runs every assignment through the transport named in it, and reports
// results back in batches. It owns:
//
//   - the stream client: handshake, reconnect with jittered exponential
//     backoff, heartbeats, credit accounting;
//   - transport availability: which hosted transports can deliver now (a
//     plugin may be down and restarting), reported to the control plane;
//   - the in-flight table: one goroutine per delivery, with a context bounded
//     by the request timeout, the lease deadline, Cancel and the drain
//     deadline;
//   - the outbox: finished results kept until the control plane acknowledges
//     them, resent after a reconnect, or after a backoff when the control
//     plane could not record them;
//   - graceful drain on Drain, on the control plane's Drain, or when Run's
//     context ends.
//
// It must not: hold signing keys or sign anything (requests arrive signed),
// decide retries or classify outcomes (the control plane does), persist
// anything to disk, or know how transports are hosted (plugin processes are
// managed by agent/pluginhost behind the TransportSource interface).
//
// # Protocol, as the agent speaks it
//
//   - Hello.max_in_flight is the credit the new stream starts with:
//     MaxInFlight minus deliveries still running from an earlier stream, so a
//     reconnect never lets the agent exceed MaxInFlight (0 while draining).
//   - After every batch of results the agent sends one Credit for the
//     deliveries that finished since the last Credit (never while draining).
//     A Credit always follows the Results carrying those deliveries.
//   - Results are sent as soon as the sender is idle; whatever finishes while
//     a send is in progress goes out together in the next Results message
//     (at most 512 results or about 1 MiB per message).
//   - A result leaves the outbox when a ResultAck names its lease, accepted
//     or not. On a new stream, Hello.held_lease_ids lists leases still in
//     flight plus unacknowledged results, and every unacknowledged result is
//     sent again right after Welcome.
//   - Leases held in flight that Welcome.honoured_lease_ids does not list are
//     cancelled (their results are still reported).
//   - A ResultAck with retry (the control plane's store cannot write) keeps
//     the result in the outbox; it is sent again on the same stream after a
//     wait in the upper half of a window that doubles from 250ms to 5s per
//     consecutive refusal (reset by the next accepted ack), or at once on a
//     new stream.
//   - TransportStatus{available=false, reason} is sent when a transport
//     becomes unavailable (TransportSource.Unavailable, or a
//     CheckedTransport refusing a delivery), and available=true when it is
//     back; a new stream is told about every unavailable transport right
//     after Welcome. Status changes always go out before Results on the
//     stream, so the control plane stops assigning for a transport before
//     it sees what was handed back for it.
//   - A delivery for an unavailable transport is not attempted: its Result
//     carries not_attempted_reason and no result (the control plane puts it
//     back without counting an attempt). Its slot is credited back as
//     usual.
//   - The reconnect backoff starts over only after a stream stayed up for
//     10s; a stream that is accepted and then ends at once counts as a
//     failure, so the agent does not reconnect in a tight loop.
//   - Lease deadlines are converted to local time using Welcome.server_time,
//     so clock skew between agent and control plane does not shorten or
//     stretch attempts.
package agent
