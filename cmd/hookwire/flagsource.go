package main

// Flag values from the environment and a config file, generic over a
// pflag.FlagSet: `hookwire agent --config FILE` and HOOKWIRE_AGENT_<FLAG>.
// Precedence: command line > environment > file > default.

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// Environment prefixes of the commands whose flags come from the
// environment too: --max-in-flight of `agent` is HOOKWIRE_AGENT_MAX_IN_FLIGHT.
const (
	agentEnvPrefix  = "HOOKWIRE_AGENT_"
	serverEnvPrefix = "HOOKWIRE_SERVER_"
	devEnvPrefix    = "HOOKWIRE_DEV_"
)

// configurable gives cmd a --config flag and, before it runs, takes every
// flag not set on the command line from prefix+FLAG in the environment,
// else from the --config file (prefix+CONFIG names the file when --config
// is not given). aliases are further variables for some flags. Call it
// once cmd's flags are registered.
func configurable(cmd *cobra.Command, prefix string, aliases map[string]string) {
	var file string
	cmd.Flags().StringVar(&file, "config", "", "YAML or JSON file of flag values, keyed by flag name (env "+prefix+"CONFIG)")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if !cmd.Flags().Changed("config") {
			file = os.Getenv(envName(prefix, "config"))
		}
		return flagSources{EnvPrefix: prefix, EnvAliases: aliases, File: file, Skip: []string{"config"}}.apply(cmd.Flags())
	}
}

// flagSources says where flags not given on the command line come from.
type flagSources struct {
	// EnvPrefix names each flag's variable: prefix + the flag name in upper
	// case with '-' as '_'. List flags take comma-separated values.
	EnvPrefix string
	// EnvAliases are further variables for a flag (flag name to variable),
	// read when the prefixed one is unset or empty.
	EnvAliases map[string]string
	// File is a YAML or JSON file whose keys are flag names; empty: none.
	File string
	// Skip are flags never taken from the environment or the file (e.g.
	// the one naming the file).
	Skip []string
}

// envName is the environment variable of flag name under prefix.
func envName(prefix, name string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// apply sets every flag of fs that was not set on the command line from the
// environment, else from the file. Unknown keys in the file are an error
// naming them.
func (s flagSources) apply(fs *pflag.FlagSet) error {
	fileValues, err := s.readFile(fs)
	if err != nil {
		return err
	}
	var errs []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" || slices.Contains(s.Skip, f.Name) {
			return
		}
		for _, env := range []string{envName(s.EnvPrefix, f.Name), s.EnvAliases[f.Name]} {
			if env == "" {
				continue
			}
			if v := os.Getenv(env); v != "" {
				if err := setFromString(fs, f, v); err != nil {
					errs = append(errs, fmt.Sprintf("%s=%q: %v", env, v, err))
				}
				return
			}
		}
		v, ok := fileValues[f.Name]
		if !ok {
			return
		}
		if err := setFromFile(fs, f, v); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %s: %v", s.File, f.Name, err))
		}
	})
	if len(errs) > 0 {
		return usageErrorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// readFile parses the file into flag name -> value and rejects keys that
// are not flags of fs.
func (s flagSources) readFile(fs *pflag.FlagSet) (map[string]any, error) {
	if s.File == "" {
		return nil, nil
	}
	data, err := os.ReadFile(s.File)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	values := map[string]any{}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := yaml.Unmarshal(data, &values); err != nil {
			return nil, inputErrorf("config file %s: expected a YAML or JSON mapping of flag names to values: %v", s.File, err)
		}
	}
	var unknown []string
	for k := range values {
		if f := fs.Lookup(k); f == nil || k == "help" || slices.Contains(s.Skip, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, inputErrorf("config file %s: unknown key(s) %s: keys are flag names without the leading --, e.g. server, label, max-in-flight",
			s.File, strings.Join(unknown, ", "))
	}
	return values, nil
}

// setFromString sets f from an environment variable; list flags split it at
// commas.
func setFromString(fs *pflag.FlagSet, f *pflag.Flag, v string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		if err := sv.Replace(splitList(v)); err != nil {
			return err
		}
		f.Changed = true // Replace does not mark the flag as set
		return nil
	}
	return fs.Set(f.Name, v)
}

func splitList(v string) []string {
	var out []string
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// setFromFile sets f from a decoded YAML/JSON value: a scalar, or for list
// flags a list of scalars (or a comma-separated string).
func setFromFile(fs *pflag.FlagSet, f *pflag.Flag, v any) error {
	sv, isList := f.Value.(pflag.SliceValue)
	switch x := v.(type) {
	case nil:
		return fmt.Errorf("no value")
	case []any:
		if !isList {
			return fmt.Errorf("expected a single value, not a list")
		}
		items := make([]string, 0, len(x))
		for _, item := range x {
			s, err := scalarString(item)
			if err != nil {
				return err
			}
			items = append(items, s)
		}
		if err := sv.Replace(items); err != nil {
			return err
		}
		f.Changed = true // Replace does not mark the flag as set
		return nil
	default:
		s, err := scalarString(x)
		if err != nil {
			return err
		}
		return setFromString(fs, f, s)
	}
}

func scalarString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool, int, int64, uint64, float64:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("expected a string, number or boolean, got %T", v)
}
