package catalog

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/hookwire/hookwire/controlplane/internal/secrets"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// Custom target headers (Target.headers) may carry credentials, so their
// values are treated like signing keys: stored only sealed under the
// master key (SubscriptionRecord.sealed_headers), opened into memory by
// Prepare for dispatch, re-sealed by a master-key rotation, and never shown.
// The stored subscription keeps the header names, each with the value
// RedactedValue, which is what every API response and audit snapshot shows.

// RedactedValue stands for a header value that is stored but never shown.
// Sent back in an update, it keeps the stored value of that header.
const RedactedValue = "<redacted>"

// HeaderAAD is the associated data a target header value is sealed with:
// it binds the sealed bytes to their tenant, subscription and header name.
func HeaderAAD(tenant, subID, name string) []byte {
	return fmt.Appendf(nil, "target-header/%s/%s/%s", tenant, subID, name)
}

// SetHeaders makes headers (names and values as a request gives them) the
// record's whole set of custom headers: each value is sealed under keys
// into rec.sealed_headers and the subscription's target keeps the name
// with RedactedValue. A value equal to RedactedValue keeps the value
// stored under the same name; there must be one. headers is not changed.
func SetHeaders(rec *storev1.SubscriptionRecord, keys *secrets.Keyring, headers map[string]string) error {
	sub := rec.GetSubscription()
	if len(headers) > 0 && sub.GetTarget() == nil {
		return errors.New("subscription has headers but no target")
	}
	stored := map[string]*storev1.SealedHeader{}
	for _, h := range rec.GetSealedHeaders() {
		stored[h.GetName()] = h
	}
	var sealed []*storev1.SealedHeader
	masked := make(map[string]string, len(headers))
	for _, name := range slices.Sorted(maps.Keys(headers)) {
		value := headers[name]
		masked[name] = RedactedValue
		if value == RedactedValue {
			old := stored[name]
			if old == nil {
				return &InputError{Field: fmt.Sprintf("subscription.target.headers[%q]", name),
					Problem: fmt.Sprintf("%q stands for a stored value and this subscription has no header %q; send the header's real value", RedactedValue, name)}
			}
			sealed = append(sealed, old)
			continue
		}
		if keys == nil {
			return errors.New("no master keyring configured to seal header values")
		}
		s, err := keys.Seal([]byte(value), HeaderAAD(sub.GetTenant(), sub.GetId(), name))
		if err != nil {
			return fmt.Errorf("seal header %q: %w", name, err)
		}
		sealed = append(sealed, &storev1.SealedHeader{Name: name, SealedValue: s})
	}
	rec.SealedHeaders = sealed
	if sub.GetTarget() != nil {
		if len(masked) == 0 {
			masked = nil
		}
		sub.Target.Headers = masked
	}
	return nil
}

// openHeaders returns a record's custom headers with their values opened.
// A value stored in clear (a record written before header values were
// sealed) is used as it is until SealClearHeaders seals it.
func openHeaders(rec *storev1.SubscriptionRecord, keys *secrets.Keyring) (map[string]string, error) {
	sub := rec.GetSubscription()
	names := sub.GetTarget().GetHeaders()
	if len(names) == 0 && len(rec.GetSealedHeaders()) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(names))
	for name, v := range names {
		if v != RedactedValue {
			out[name] = v
		}
	}
	for _, h := range rec.GetSealedHeaders() {
		if keys == nil {
			return nil, errors.New("no master keyring configured to open header values")
		}
		raw, err := keys.Open(h.GetSealedValue(), HeaderAAD(sub.GetTenant(), sub.GetId(), h.GetName()))
		if err != nil {
			return nil, fmt.Errorf("open value of header %q: %w", h.GetName(), err)
		}
		out[h.GetName()] = string(raw)
	}
	return out, nil
}

// HasClearHeaders reports whether the record keeps a header value in
// clear (written before header values were sealed).
func HasClearHeaders(rec *storev1.SubscriptionRecord) bool {
	for _, v := range rec.GetSubscription().GetTarget().GetHeaders() {
		if v != RedactedValue {
			return true
		}
	}
	return false
}

// SealClearHeaders seals the header values a record keeps in clear and
// returns how many it sealed.
func SealClearHeaders(rec *storev1.SubscriptionRecord, keys *secrets.Keyring) (int, error) {
	if !HasClearHeaders(rec) {
		return 0, nil
	}
	n := 0
	for _, v := range rec.GetSubscription().GetTarget().GetHeaders() {
		if v != RedactedValue {
			n++
		}
	}
	// The headers as a request would give them: clear values, and the
	// mask for the ones already sealed.
	if err := SetHeaders(rec, keys, maps.Clone(rec.GetSubscription().GetTarget().GetHeaders())); err != nil {
		return 0, err
	}
	return n, nil
}

// MaskHeaders replaces every custom header value of sub with RedactedValue,
// for responses: nothing shown can carry a stored value.
func MaskHeaders(sub *hookwirev1.Subscription) {
	h := sub.GetTarget().GetHeaders()
	for name := range h {
		h[name] = RedactedValue
	}
}

// resealHeaders re-seals under the keyring's current master key every
// header value of the record sealed under another one; it returns how many.
func resealHeaders(rec *storev1.SubscriptionRecord, keys *secrets.Keyring) (int, error) {
	sub := rec.GetSubscription()
	n := 0
	for _, h := range rec.GetSealedHeaders() {
		if !keys.NeedsRotation(h.GetSealedValue()) {
			continue
		}
		sealed, err := keys.Reseal(h.GetSealedValue(), HeaderAAD(sub.GetTenant(), sub.GetId(), h.GetName()))
		if err != nil {
			return n, fmt.Errorf("subscription %s header %q: %w", sub.GetId(), h.GetName(), err)
		}
		h.SealedValue = sealed
		n++
	}
	return n, nil
}

// CheckTargetKeys reports, for every sealed header value and secret
// target configuration value of rec that keys cannot open, the sealed
// bytes (so a caller can name their master key).
func CheckTargetKeys(rec *storev1.SubscriptionRecord, keys *secrets.Keyring, unopened func(sealed []byte, err error)) {
	sub := rec.GetSubscription()
	for _, h := range rec.GetSealedHeaders() {
		raw, err := keys.Open(h.GetSealedValue(), HeaderAAD(sub.GetTenant(), sub.GetId(), h.GetName()))
		clear(raw)
		if err != nil {
			unopened(h.GetSealedValue(), err)
		}
	}
	for _, sc := range rec.GetSealedConfig() {
		raw, err := keys.Open(sc.GetSealedValue(), ConfigAAD(sub.GetTenant(), sub.GetId(), sc.GetName()))
		clear(raw)
		if err != nil {
			unopened(sc.GetSealedValue(), err)
		}
	}
}
