package main

import (
	"fmt"

	"github.com/hookwire/hookwire/controlplane"
	"github.com/spf13/cobra"
)

// newStoreCmd is `hookwire store`: operator commands on a data directory.
func newStoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Inspect the control plane's store (offline)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newStoreCheckCmd())
	return cmd
}

func newStoreCheckCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check a data directory's store for damage (offline, read-only)",
		Long: `Check the store in --data-dir without changing it: the data directory's
marker, the database file's meta pages and length, the structure of every
page, each record's checksum and decoding, and the indexes against their
records. It prints a report and exits 1 when it found a problem.

Run it on a stopped server (it refuses while a server holds the directory)
or on a copy of the data directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := controlplane.CheckStore(dataDir)
			if err != nil {
				return err
			}
			rep.Write(cmd.OutOrStdout())
			if !rep.OK() {
				return exitError{code: 1, err: fmt.Errorf("store check found problems in %s (%d)", rep.Path, rep.ProblemCount())}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "hookwire-data", "the data directory to check (the server's --data-dir)")
	return cmd
}
