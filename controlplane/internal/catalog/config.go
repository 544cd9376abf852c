package catalog

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hookwire/hookwire/controlplane/internal/secrets"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// Target configuration fields that a transport declares secret
// (transport.v1.ConfigField.secret, e.g. a broker URL with user:password)
// are treated like header values: stored only sealed under the master key
// (SubscriptionRecord.sealed_config), opened into memory by Prepare for
// dispatch, re-sealed by a master-key rotation, and never shown. The
// stored subscription keeps such a field with the value RedactedValue,
// which is what every API response and audit snapshot shows. Which fields
// are secret is the transport's schema, so the functions that seal take
// the secret field names; opening needs only the record, which names the
// fields it sealed.

// SecretFields returns the names of a transport's secret configuration
// fields (nil for a transport whose schema is not known).
type SecretFields func(transport string) []string

// ConfigAAD is the associated data a secret target configuration value is
// sealed with: it binds the sealed bytes to their tenant, subscription and
// field name.
func ConfigAAD(tenant, subID, name string) []byte {
	return fmt.Appendf(nil, "target-config/%s/%s/%s", tenant, subID, name)
}

// isRedacted reports whether v is the RedactedValue placeholder.
func isRedacted(v *structpb.Value) bool {
	s, ok := v.GetKind().(*structpb.Value_StringValue)
	return ok && s.StringValue == RedactedValue
}

// OpenConfig returns config with every field whose value is RedactedValue
// and that rec holds sealed replaced by its opened value: the
// configuration as a request means it (a subscription read with Get and
// sent back unchanged keeps its secrets), for the transport to validate.
// config itself is not changed; it is returned as is when there is
// nothing to open.
func OpenConfig(rec *storev1.SubscriptionRecord, keys *secrets.Keyring, config *structpb.Struct) (*structpb.Struct, error) {
	var out *structpb.Struct
	sub := rec.GetSubscription()
	for _, sc := range rec.GetSealedConfig() {
		v, ok := config.GetFields()[sc.GetName()]
		if !ok || !isRedacted(v) {
			continue
		}
		if keys == nil {
			return nil, errors.New("no master keyring configured to open target configuration values")
		}
		raw, err := keys.Open(sc.GetSealedValue(), ConfigAAD(sub.GetTenant(), sub.GetId(), sc.GetName()))
		if err != nil {
			return nil, fmt.Errorf("open target config field %q: %w", sc.GetName(), err)
		}
		opened := &structpb.Value{}
		err = proto.Unmarshal(raw, opened)
		clear(raw)
		if err != nil {
			return nil, fmt.Errorf("open target config field %q: %w", sc.GetName(), err)
		}
		if out == nil {
			out = &structpb.Struct{Fields: maps.Clone(config.GetFields())}
		}
		out.Fields[sc.GetName()] = opened
	}
	if out == nil {
		return config, nil
	}
	return out, nil
}

// SetConfig makes config the record's target configuration: the value of
// every field named in secret is sealed under keys into rec.sealed_config
// and the subscription's target keeps the field with RedactedValue. A
// field whose value is RedactedValue stands for the value rec holds
// sealed under that name, and keeps its sealed bytes; for a secret field
// there must be some. A sealed value stays sealed even when secret no
// longer names its field (another transport, or a server that does not
// know the transport's schema): only a new value sent in clear replaces
// it. config is not changed; the record keeps a copy.
func SetConfig(rec *storev1.SubscriptionRecord, keys *secrets.Keyring, config *structpb.Struct, secret []string) error {
	sub := rec.GetSubscription()
	if sub.GetTarget() == nil {
		if len(config.GetFields()) > 0 {
			return errors.New("subscription has a target config but no target")
		}
		rec.SealedConfig = nil
		return nil
	}
	stored := map[string]*storev1.SealedConfigField{}
	for _, sc := range rec.GetSealedConfig() {
		stored[sc.GetName()] = sc
	}
	var sealed []*storev1.SealedConfigField
	var out *structpb.Struct
	if config != nil {
		out = &structpb.Struct{Fields: make(map[string]*structpb.Value, len(config.GetFields()))}
	}
	for _, name := range slices.Sorted(maps.Keys(config.GetFields())) {
		v := config.GetFields()[name]
		old := stored[name]
		if isRedacted(v) && old != nil {
			out.Fields[name] = v
			sealed = append(sealed, old)
			continue
		}
		if !slices.Contains(secret, name) {
			out.Fields[name] = proto.CloneOf(v)
			continue
		}
		out.Fields[name] = structpb.NewStringValue(RedactedValue)
		if isRedacted(v) { // and nothing stored
			return &InputError{Field: "subscription.target.config." + name,
				Problem: fmt.Sprintf("%q stands for a stored value and this subscription has no stored %q; send the field's real value", RedactedValue, name)}
		}
		if keys == nil {
			return errors.New("no master keyring configured to seal target configuration values")
		}
		raw, err := proto.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode target config field %q: %w", name, err)
		}
		s, err := keys.Seal(raw, ConfigAAD(sub.GetTenant(), sub.GetId(), name))
		clear(raw)
		if err != nil {
			return fmt.Errorf("seal target config field %q: %w", name, err)
		}
		sealed = append(sealed, &storev1.SealedConfigField{Name: name, SealedValue: s})
	}
	rec.SealedConfig = sealed
	sub.Target.Config = out
	return nil
}

// openConfig returns the record's target configuration with its secret
// fields opened, for delivery.
func openConfig(rec *storev1.SubscriptionRecord, keys *secrets.Keyring) (*structpb.Struct, error) {
	return OpenConfig(rec, keys, rec.GetSubscription().GetTarget().GetConfig())
}

// clearSecretFields returns the names of the fields of rec's target
// configuration that secret names but the record keeps in clear (written
// before its transport's fields were sealed, or before the server knew
// the transport's schema).
func clearSecretFields(rec *storev1.SubscriptionRecord, secret []string) []string {
	var names []string
	for name, v := range rec.GetSubscription().GetTarget().GetConfig().GetFields() {
		if slices.Contains(secret, name) && !isRedacted(v) {
			names = append(names, name)
		}
	}
	return names
}

// HasClearConfig reports whether the record keeps a secret configuration
// field (by secret, the names its transport declares) in clear.
func HasClearConfig(rec *storev1.SubscriptionRecord, secret []string) bool {
	return len(clearSecretFields(rec, secret)) > 0
}

// SealClearConfig seals the secret configuration values a record keeps
// in clear and returns how many it sealed.
func SealClearConfig(rec *storev1.SubscriptionRecord, keys *secrets.Keyring, secret []string) (int, error) {
	n := len(clearSecretFields(rec, secret))
	if n == 0 {
		return 0, nil
	}
	if err := SetConfig(rec, keys, rec.GetSubscription().GetTarget().GetConfig(), secret); err != nil {
		return 0, err
	}
	return n, nil
}

// MaskConfig replaces the value of every field of sub's target
// configuration that secret names with RedactedValue, for responses:
// nothing shown can carry a secret value, even one stored before it was
// sealed. The configuration is replaced, not changed in place.
func MaskConfig(sub *hookwirev1.Subscription, secret []string) {
	t := sub.GetTarget()
	var out *structpb.Struct
	for name, v := range t.GetConfig().GetFields() {
		if !slices.Contains(secret, name) || isRedacted(v) {
			continue
		}
		if out == nil {
			out = &structpb.Struct{Fields: maps.Clone(t.GetConfig().GetFields())}
		}
		out.Fields[name] = structpb.NewStringValue(RedactedValue)
	}
	if out != nil {
		t.Config = out
	}
}

// resealConfig re-seals under the keyring's current master key every
// secret configuration value of the record sealed under another one; it
// returns how many.
func resealConfig(rec *storev1.SubscriptionRecord, keys *secrets.Keyring) (int, error) {
	sub := rec.GetSubscription()
	n := 0
	for _, sc := range rec.GetSealedConfig() {
		if !keys.NeedsRotation(sc.GetSealedValue()) {
			continue
		}
		sealed, err := keys.Reseal(sc.GetSealedValue(), ConfigAAD(sub.GetTenant(), sub.GetId(), sc.GetName()))
		if err != nil {
			return n, fmt.Errorf("subscription %s target config field %q: %w", sub.GetId(), sc.GetName(), err)
		}
		sc.SealedValue = sealed
		n++
	}
	return n, nil
}
