package main

import (
	"fmt"

	"github.com/hookwire/hookwire/internal/buildinfo"
	"github.com/spf13/cobra"
)

// version is this build's version ("v1.2.3" from scripts/release.sh; see
// internal/buildinfo for a development build).
var version = buildinfo.Get().Version

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version of this binary",
		Long: `Print which build of Hookwire this is: its version, the commit it was built
from ("-dirty" if the tree had changes), the build date and the Go version.
A release build has all of them; a plain "go build" in a checkout has the
commit and its time; "go run" records none of them ("dev", "unknown").
The server logs the same at start and exports it as the metric
hookwire_build_info.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := buildinfo.Get()
			switch output {
			case "", "text":
				_, err := fmt.Fprint(cmd.OutOrStdout(), in.String())
				return err
			case "json":
				return writeValue(cmd.OutOrStdout(), "json", in)
			default:
				return fmt.Errorf("--output %q: use text or json", output)
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}
