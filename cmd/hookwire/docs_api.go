package main

// `hookwire docs api` (hidden, under `docs`) prints the API reference,
// docs/API.md, built from the protos' comments and HTTP bindings embedded
// at generation time; TestDocsAPIUpToDate checks the committed file. The
// running control plane serves the same reference as HTML at GET /docs.

import (
	"github.com/hookwire/hookwire/controlplane"
	"github.com/spf13/cobra"
)

func newDocsAPICmd() *cobra.Command {
	return &cobra.Command{
		Use:   "api",
		Short: "Print the API reference (docs/API.md) as Markdown",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return controlplane.WriteAPIReference(cmd.OutOrStdout())
		},
	}
}
