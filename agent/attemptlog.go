package agent

import (
	"context"
	"log/slog"
	"strings"
	"time"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
)

// logAttempt writes one debug line per finished attempt. It names the
// delivery and what happened, never the payload, the request headers
// (they carry the signature) or the target's response; the error text is
// left out too, since a transport may quote the target URL, which can
// carry credentials. The full attempt is kept by the control plane.
func (a *Agent) logAttempt(l *lease, start time.Time, res *transportv1.DeliveryResult) {
	ctx := context.Background()
	if !a.cfg.Logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	a.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "attempt finished",
		slog.String("delivery", l.deliveryID),
		slog.Int("attempt", int(l.attempt)),
		slog.String("lease", l.id),
		slog.String("transport", l.transportName),
		slog.String("event_type", l.req.GetEventType()),
		slog.String("outcome", outcomeName(res.GetOutcome())),
		slog.Int("status_code", int(res.GetStatusCode())),
		slog.Duration("duration", time.Since(start)),
		slog.Duration("transport_latency", res.GetLatency().AsDuration()),
	)
}

// outcomeName is the outcome without its enum prefix ("success",
// "connection_error").
func outcomeName(o transportv1.Outcome) string {
	return strings.ToLower(strings.TrimPrefix(o.String(), "OUTCOME_"))
}
