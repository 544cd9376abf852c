// Package pluginhost runs an agent's transport plugins.
//
// It owns the plugin processes: it starts each one through
// hashicorp/go-plugin (gRPC only, versioned handshake, optional SHA-256 pin
// of the binary), checks that the plugin is the transport it was configured
// as, hands the agent a stable sdk.Transport per plugin, and restarts a
// plugin that exits unexpectedly, with exponential backoff.
//
// A plugin crash never blocks or loses a delivery silently: deliveries in
// flight on the crashed process come back at once as
// OUTCOME_CONNECTION_ERROR (the control plane retries them), and deliveries
// attempted while the plugin is down get the same result immediately.
//
// Built-in transports run the same way as third-party ones: the agent gives
// a Spec whose Command re-executes its own binary (`hookwire plugin http`).
// This package does not know about subscriptions, leases or the control
// plane; it only runs transports.
package pluginhost
