package api

import (
	"context"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/signing"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Secret rotation overlap bounds.
const (
	DefaultRotationOverlap = 24 * time.Hour
	MaxRotationOverlap     = 7 * 24 * time.Hour
)

// newSigningKey generates a key of the scheme.
func newSigningKey(scheme hookwirev1.SignatureScheme) (signing.Key, error) {
	var text string
	var err error
	switch scheme {
	case hookwirev1.SignatureScheme_SIGNATURE_SCHEME_UNSPECIFIED, hookwirev1.SignatureScheme_SIGNATURE_SCHEME_HMAC_SHA256:
		text, err = signing.GenerateSecret()
	case hookwirev1.SignatureScheme_SIGNATURE_SCHEME_ED25519:
		text, _, err = signing.GenerateEd25519()
	default:
		return signing.Key{}, status.Errorf(codes.InvalidArgument, "signature_scheme %d is unknown; use SIGNATURE_SCHEME_HMAC_SHA256 (default) or SIGNATURE_SCHEME_ED25519", int32(scheme))
	}
	if err != nil {
		return signing.Key{}, status.Errorf(codes.Internal, "%v", err)
	}
	key, err := signing.ParseSigningKey(text)
	if err != nil {
		return signing.Key{}, status.Errorf(codes.Internal, "generated signing key does not parse: %v", err)
	}
	return key, nil
}

// shownSecret is the secret a response may show once: the "whsec_" of an
// HMAC key. An ed25519 secret key stays with Hookwire; receivers need only
// the public key.
func shownSecret(key signing.Key) string {
	if key.Scheme() != signing.SchemeHMAC {
		return ""
	}
	return key.Secret()
}

func (s *subscriptionService) RotateSubscriptionSecret(ctx context.Context, req *hookwirev1.RotateSubscriptionSecretRequest) (*hookwirev1.RotateSubscriptionSecretResponse, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	overlap := DefaultRotationOverlap
	if d := req.GetOverlap(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "overlap: %v", err)
		}
		overlap = d.AsDuration()
		if overlap < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "overlap %s is negative; give how long the old key keeps signing, from \"0s\" to \"604800s\" (7 days)", overlap)
		}
		if overlap > MaxRotationOverlap {
			return nil, status.Errorf(codes.InvalidArgument, "overlap %s is longer than the maximum of 7 days (\"604800s\"); rotate with a shorter overlap", overlap)
		}
	}
	if _, err := newSigningKey(req.GetScheme()); status.Code(err) == codes.InvalidArgument {
		return nil, status.Errorf(codes.InvalidArgument, "scheme %d is unknown; use SIGNATURE_SCHEME_HMAC_SHA256 or SIGNATURE_SCHEME_ED25519, or leave it unset to keep the current scheme", int32(req.GetScheme()))
	}
	var key signing.Key
	var expire time.Time
	audit := func(before, after *hookwirev1.Subscription) (*hookwirev1.AuditEvent, error) {
		return s.auditEvent(ctx, &auditEntry{tenant: req.GetTenant(), action: auditSubscriptionRotate, resource: subscriptionResource(req.GetTenant(), req.GetId()),
			before: before, after: after, details: map[string]any{
				"overlap": overlap.String(), "scheme": after.GetSignatureScheme().String(),
				"previous_keys_expire_time": expire.UTC().Format(time.RFC3339),
			}})
	}
	keys, release := s.sealing()
	defer release()
	rec, err := s.updateSubscription(ctx, req.GetTenant(), req.GetId(), func(r *storev1.SubscriptionRecord) error {
		sub := r.GetSubscription()
		scheme := req.GetScheme()
		if scheme == hookwirev1.SignatureScheme_SIGNATURE_SCHEME_UNSPECIFIED {
			scheme = sub.GetSignatureScheme()
		}
		scheme = catalog.NormalScheme(scheme)
		var err error
		if key, err = newSigningKey(scheme); err != nil {
			return err
		}
		now := s.cfg.Now()
		sealed, err := catalog.SealKey(keys, sub, catalog.NextKeyVersion(r), key)
		if err != nil {
			return status.Errorf(codes.Internal, "seal signing key: %v", err)
		}
		expire = catalog.RotateKeys(r, sealed, now, overlap)
		sub.SignatureScheme, sub.SigningPublicKey = scheme, key.PublicKey()
		sub.UpdateTime = timestamppb.New(now)
		_, err = catalog.Prepare(r, keys)
		return err
	}, audit)
	if err != nil {
		return nil, subscriptionError(err, "subscription "+quote(req.GetId()))
	}
	prepared, err := catalog.Prepare(rec, keys)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	s.cfg.Catalog.Put(prepared)
	s.cfg.Logger.Info("subscription signing key rotated", "tenant", req.GetTenant(), "subscription", req.GetId(),
		"scheme", key.Scheme().String(), "previous_keys_expire", expire)
	out := s.present(proto.Clone(rec.GetSubscription()).(*hookwirev1.Subscription))
	out.SigningSecret = shownSecret(key)
	return &hookwirev1.RotateSubscriptionSecretResponse{Subscription: out, PreviousKeysExpireTime: timestamppb.New(expire)}, nil
}
