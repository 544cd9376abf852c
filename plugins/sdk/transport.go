package sdk

import (
	"context"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"google.golang.org/protobuf/types/known/structpb"
)

// Info describes a transport plugin.
type Info struct {
	// Name is the transport name used in subscription targets, e.g. "http".
	Name string
	// Version is the plugin's own release version.
	Version string
	// APIVersions are the transport protocol versions the plugin speaks.
	APIVersions []uint32
	// TargetSchema is a JSON Schema for the target configuration.
	TargetSchema string
	// ConfigFields lists the top-level fields of the target configuration
	// and marks the secret ones (see ConfigField); derive it from
	// TargetSchema with ConfigFieldsFromSchema. A transport with a field
	// that may carry a credential must mark it secret, or the control
	// plane stores and shows its value in clear.
	ConfigFields []ConfigField
}

// Transport is what a transport plugin implements, and also what the agent
// holds for a running plugin: the host-side client implements the same
// interface over gRPC, so agent code cannot tell a plugin process from an
// in-process transport.
//
// Deliver is called concurrently; implementations must be safe for
// concurrent use. Deliver never returns an error: every failure is a
// DeliveryResult with an Outcome, so the control plane can classify it.
type Transport interface {
	// Describe returns the plugin's identity.
	Describe(ctx context.Context) (Info, error)
	// Validate checks a target configuration and returns the problems found,
	// each a sentence a user can act on; nil means valid.
	Validate(ctx context.Context, config *structpb.Struct) ([]string, error)
	// Deliver makes one attempt and reports what came of it. It must return
	// by req.Timeout (or ctx's deadline, whichever is first). When served as
	// a plugin, ctx already carries that deadline (DefaultTimeout when the
	// request has none), so honouring ctx is enough.
	Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult
}
