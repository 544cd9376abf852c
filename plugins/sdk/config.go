package sdk

import (
	"encoding/json"
	"fmt"
	"slices"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
)

// ConfigField describes one top-level field of a transport's target
// configuration (transportv1.ConfigField). Secret marks a value that is a
// credential or may contain one (a password, a token, a URL that may
// carry user:password): the control plane stores it only sealed under its
// master key, shows it only as "<redacted>" (API, audit log, logs), and
// hands the real value to the agent in DeliveryRequest.config.
type ConfigField struct {
	Name        string
	Type        string // JSON type: "string", "number", "integer", "boolean", "object", "array"
	Secret      bool
	Required    bool
	Description string
}

// ConfigFieldsFromSchema derives Info.ConfigFields from a target JSON
// Schema, so the schema stays the one place a transport describes its
// configuration: one field per entry of the top-level "properties" (sorted
// by name), with its "type", "description", whether "required" lists it,
// and Secret set where the property says "writeOnly": true (JSON Schema's
// mark for a value that is sent but never returned, e.g. a password).
func ConfigFieldsFromSchema(schema string) ([]ConfigField, error) {
	var s struct {
		Properties map[string]struct {
			Type        any    `json:"type"`
			Description string `json:"description"`
			WriteOnly   bool   `json:"writeOnly"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	if err := json.Unmarshal([]byte(schema), &s); err != nil {
		return nil, fmt.Errorf("target schema is not a JSON Schema object: %w", err)
	}
	fields := make([]ConfigField, 0, len(s.Properties))
	for name, p := range s.Properties {
		typ, _ := p.Type.(string) // a list of types stays ""
		fields = append(fields, ConfigField{
			Name: name, Type: typ, Secret: p.WriteOnly,
			Required: slices.Contains(s.Required, name), Description: p.Description,
		})
	}
	slices.SortFunc(fields, func(a, b ConfigField) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return fields, nil
}

// MustConfigFields is ConfigFieldsFromSchema for a schema compiled into
// the plugin; it panics if the schema does not parse.
func MustConfigFields(schema string) []ConfigField {
	fields, err := ConfigFieldsFromSchema(schema)
	if err != nil {
		panic(err)
	}
	return fields
}

// SecretFields returns the names of the secret fields of info, sorted.
func (info Info) SecretFields() []string {
	var names []string
	for _, f := range info.ConfigFields {
		if f.Secret {
			names = append(names, f.Name)
		}
	}
	slices.Sort(names)
	return names
}

func configFieldsToProto(fields []ConfigField) []*transportv1.ConfigField {
	if len(fields) == 0 {
		return nil
	}
	out := make([]*transportv1.ConfigField, len(fields))
	for i, f := range fields {
		out[i] = &transportv1.ConfigField{Name: f.Name, Type: f.Type, Secret: f.Secret, Required: f.Required, Description: f.Description}
	}
	return out
}

func configFieldsFromProto(fields []*transportv1.ConfigField) []ConfigField {
	if len(fields) == 0 {
		return nil
	}
	out := make([]ConfigField, len(fields))
	for i, f := range fields {
		out[i] = ConfigField{Name: f.GetName(), Type: f.GetType(), Secret: f.GetSecret(), Required: f.GetRequired(), Description: f.GetDescription()}
	}
	return out
}
