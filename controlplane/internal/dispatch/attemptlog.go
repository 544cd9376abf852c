package dispatch

import (
	"context"
	"log/slog"
	"strings"
	"time"
)

// logAttempts writes one debug line per result committed by complete:
// which delivery, what happened and what comes next. Never the payload,
// the signed headers, the target's response or the error text (a
// transport may quote the target URL, which can carry credentials); the
// full attempt is in the store.
func (d *Dispatcher) logAttempts(agentID string, work []*pendingResult) {
	ctx := context.Background()
	if !d.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	for _, w := range work {
		del := w.change.Result
		if !w.change.Applied || del == nil {
			continue
		}
		res := w.res.GetResult()
		next := ""
		if t := del.GetNextAttemptTime(); t != nil {
			next = t.AsTime().UTC().Format(time.RFC3339Nano)
		}
		d.log.LogAttrs(ctx, slog.LevelDebug, "attempt recorded",
			slog.String("delivery", w.lease.item.idText),
			slog.String("event", del.GetEventId()),
			slog.String("subscription", del.GetSubscriptionId()),
			slog.String("tenant", del.GetTenant()),
			slog.Int("attempt", int(w.lease.item.attempt)),
			slog.Int("status_code", int(res.GetStatusCode())),
			slog.String("outcome", strings.ToLower(strings.TrimPrefix(res.GetOutcome().String(), "OUTCOME_"))),
			slog.Duration("duration", res.GetLatency().AsDuration()),
			slog.String("agent", agentID),
			slog.String("status", strings.ToLower(strings.TrimPrefix(del.GetStatus().String(), "DELIVERY_STATUS_"))),
			slog.String("next_attempt", next),
		)
	}
}
