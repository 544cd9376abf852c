package main

import "github.com/spf13/cobra"

// Commands are grouped by file: runtime commands (server, agent, dev, sink,
// plugin) are registered in main.go; clientCommands (cli*.go) talk to a
// running control plane; toolCommands (bench*.go) are operator tools.

// clientCommands returns the API client commands: tenants, api-keys,
// subscriptions, events, deliveries, attempts, context, and the help topics
// exit-codes and environment (cli*.go).
func clientCommands() []*cobra.Command {
	c := &cli{}
	return append(c.commands(), c.auditCmd(), c.tailCmd(), c.statsCmd())
}

// toolCommands returns operator tools: the benchmark (bench*.go), keygen
// (keygen.go) and store check (storecmd.go).
func toolCommands() []*cobra.Command {
	return []*cobra.Command{newBenchCmd(), newKeygenCmd(), newStoreCmd()}
}
