// Command transport-vault is a third-party transport plugin for tests: its
// target configuration has a secret field (token), which the control plane
// learns from its Describe answer when the plugin is in the server's
// --plugin-dir. Deliver succeeds without sending anything.
package main

import (
	"context"

	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/sdk"
)

const targetSchema = `{
  "type": "object",
  "properties": {
    "address": {"type": "string", "description": "Where to deliver."},
    "token": {"type": "string", "writeOnly": true, "description": "Access token."}
  },
  "required": ["address", "token"],
  "additionalProperties": false
}`

type vault struct{}

func (vault) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "vault", Version: "0.0.1", APIVersions: []uint32{sdk.APIVersion},
		TargetSchema: targetSchema, ConfigFields: sdk.MustConfigFields(targetSchema)}, nil
}

func (vault) Validate(_ context.Context, cfg *structpb.Struct) ([]string, error) {
	if cfg.GetFields()["token"].GetStringValue() == "" {
		return []string{"token is required"}, nil
	}
	return nil, nil
}

func (vault) Deliver(context.Context, *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	return &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_SUCCESS}
}

func main() { sdk.Serve(vault{}) }
