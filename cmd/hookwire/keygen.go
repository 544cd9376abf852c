package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hookwire/hookwire/controlplane"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// masterKeyFlags select the master key that encrypts signing keys at rest.
type masterKeyFlags struct {
	file     string
	previous []string
	// missing lists the --previous-master-key-file files the last load
	// skipped because they do not exist.
	missing []string
}

func (f *masterKeyFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.file, "master-key-file", "", "file holding the master key that encrypts signing keys at rest (create it with 'hookwire keygen --out FILE'); default: $"+controlplane.MasterKeyEnv)
	fs.StringArrayVar(&f.previous, "previous-master-key-file", nil, "file holding an earlier master key, kept readable while stored keys are re-sealed under the current one (repeatable; a missing file is skipped, so it may name where a rotation will put the old key; see SIGHUP in OPERATIONS.md)")
}

// load returns the current and previous master keys. Errors name the file
// or variable, never the key.
func (f *masterKeyFlags) load() (*controlplane.MasterKey, []*controlplane.MasterKey, error) {
	var current *controlplane.MasterKey
	var err error
	switch {
	case f.file != "":
		current, err = controlplane.LoadMasterKey(f.file)
	case os.Getenv(controlplane.MasterKeyEnv) != "":
		current, err = controlplane.MasterKeyFromEnv(controlplane.MasterKeyEnv)
	default:
		return nil, nil, errors.New("no master key: the server encrypts signing keys at rest and needs one; create it with `hookwire keygen --out /path/master.key`, then pass --master-key-file /path/master.key (or put the file's contents in " + controlplane.MasterKeyEnv + ")")
	}
	if err != nil {
		return nil, nil, err
	}
	var previous []*controlplane.MasterKey
	f.missing = nil
	for _, p := range f.previous {
		k, err := controlplane.LoadMasterKey(p)
		if errors.Is(err, fs.ErrNotExist) {
			f.missing = append(f.missing, p)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("--previous-master-key-file: %w", err)
		}
		previous = append(previous, k)
	}
	return current, previous, nil
}

// devMasterKeyFile is the dev master key inside the data directory.
const devMasterKeyFile = "master.key"

// devMasterKey returns the dev master key, creating <dir>/master.key (mode
// 0600) on first run.
func devMasterKey(dir string) (*controlplane.MasterKey, error) {
	path := filepath.Join(dir, devMasterKeyFile)
	k, err := controlplane.LoadMasterKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return controlplane.GenerateMasterKeyFile(path)
}

func newKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Create a master key file for `hookwire server --master-key-file`",
		Long: `Create a new random master key in FILE (mode 0600). The control plane
encrypts every subscription signing key with it; whoever can read the file
can decrypt them, so keep it off the data volume's backups and out of
version control. The key itself is not printed.

To rotate the master key, create a new file and restart the server with
--master-key-file NEW --previous-master-key-file OLD; once the log says the
rotation is done, drop --previous-master-key-file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required: the file to write the new master key to")
			}
			k, err := controlplane.GenerateMasterKeyFile(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Wrote master key %s to %s (mode 0600). Start the server with --master-key-file %s\n", k.ID(), out, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to create (refuses to overwrite)")
	return cmd
}
