// Package pluginhost runs an agent's transport plugins.
//
// It owns the plugin processes: it starts each one through
// hashicorp/go-plugin (gRPC only, versioned handshake, optional SHA-256 pin
// of the binary), checks that the plugin is the transport it was configured
// as, hands the agent a stable sdk.Transport per plugin, and restarts a
// plugin that exits unexpectedly: at once after a crash of a plugin that
// had been running stably, with a short capped backoff in a crash loop.
//
// A plugin crash never blocks or loses a delivery silently: deliveries in
// flight on the crashed process come back at once as
// OUTCOME_CONNECTION_ERROR (they may have reached the target; the control
// plane retries them). A delivery offered while the plugin is down never
// reaches a target, so it is not an attempt: DeliverIfRunning says so
// without a result, and the agent hands it back. Host.Unavailable reports
// which plugins are down and signals every change, so the agent can stop
// taking work for them.
//
// Built-in transports run the same way as third-party ones: the agent gives
// a Spec whose Command re-executes its own binary (`hookwire plugin http`).
// This package does not know about subscriptions, leases or the control
// plane; it only runs transports.
//
// # Plugin directories
//
// Third-party transports are binaries in a plugin directory, found by
// Discover (or ScanDir, which also says what it skipped and why). The file
// hookwire-transport-<name> serves the transport <name>: put an executable
// built with plugins/sdk there, e.g.
//
//	go build -o /etc/hookwire/plugins/hookwire-transport-file ./examples/transport-file
//	hookwire agent --plugin-dir /etc/hookwire/plugins \
//	    --plugin-sha256 file=$(sha256sum /etc/hookwire/plugins/hookwire-transport-file | cut -d' ' -f1)
//
// and subscriptions can name the transport "file". A pin makes the Host
// refuse a binary whose SHA-256 differs, at start and at every restart.
package pluginhost
