package api

import (
	"context"
	"fmt"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
)

// sealClearHeaders seals the target header values and secret target
// configuration values that subscriptions still keep in clear: written
// before header values were sealed, before their transport declared the
// field secret, or while this server did not know the transport's schema
// (a third-party plugin added to --transport-plugin-dir later). It runs at
// start, before the catalog is loaded, and writes only when there are
// some, 64 subscriptions per write.
func (s *Services) sealClearHeaders(ctx context.Context) error {
	found := false
	if err := s.cfg.Store.AllSubscriptions(func(rec *storev1.SubscriptionRecord) error {
		found = found || catalog.HasClearHeaders(rec) ||
			catalog.HasClearConfig(rec, s.secretFields(rec.GetSubscription().GetTarget().GetTransport()))
		return nil
	}); err != nil || !found {
		return err
	}
	keys, release := s.sealing()
	defer release()
	var after []byte
	subs := 0
	for {
		next, changed, err := s.cfg.Store.UpdateSubscriptionBatch(ctx, after, 64, func(rec *storev1.SubscriptionRecord) (bool, error) {
			n, err := catalog.SealClearHeaders(rec, keys)
			if err != nil {
				return false, err
			}
			c, err := catalog.SealClearConfig(rec, keys, s.secretFields(rec.GetSubscription().GetTarget().GetTransport()))
			return n+c > 0, err
		})
		if err != nil {
			return fmt.Errorf("seal target header and secret config values stored in clear: %w", err)
		}
		subs += changed
		if next == nil {
			break
		}
		after = next
	}
	s.cfg.Logger.Info("sealed target header values and secret target config values stored in clear under the master key", "subscriptions", subs)
	return nil
}
