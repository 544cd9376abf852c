package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// testFlags is a flag set like the agent's: a string, a list, an int and a
// bool, plus --config.
func testFlags(t *testing.T, args ...string) (*pflag.FlagSet, *agentFlags) {
	t.Helper()
	var af agentFlags
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	fs.StringVar(&af.server, "server", "127.0.0.1:7070", "")
	fs.StringVar(&af.apiKey, "api-key", "", "")
	fs.String("config", "", "")
	af.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs, &af
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func testSources(file string) flagSources {
	return flagSources{EnvPrefix: "HWTEST_", EnvAliases: map[string]string{"api-key": "HWTEST_KEY_ALIAS"}, File: file, Skip: []string{"config"}}
}

func TestFlagSourcesFile(t *testing.T) {
	for name, content := range map[string]string{
		"agent.yaml": "server: cp:7070\nlabel: [region=eu, tier=edge]\nmax-in-flight: 128\nallow-insecure-http: true\nallow-cidr: 10.0.0.0/8,192.168.0.0/16\n",
		"agent.json": `{"server":"cp:7070","label":["region=eu","tier=edge"],"max-in-flight":128,"allow-insecure-http":true,"allow-cidr":"10.0.0.0/8,192.168.0.0/16"}`,
	} {
		t.Run(name, func(t *testing.T) {
			fs, af := testFlags(t)
			if err := testSources(writeFile(t, name, content)).apply(fs); err != nil {
				t.Fatal(err)
			}
			if af.server != "cp:7070" || af.maxInFlight != 128 || !af.allowInsecureHTTP ||
				!slices.Equal(af.labels, []string{"region=eu", "tier=edge"}) ||
				!slices.Equal(af.allowCIDRs, []string{"10.0.0.0/8", "192.168.0.0/16"}) {
				t.Fatalf("flags from file: %+v", af)
			}
		})
	}
}

func TestFlagSourcesPrecedence(t *testing.T) {
	file := writeFile(t, "agent.yaml", "server: file:1\nid: file-id\nlabel: [from=file]\nmax-in-flight: 3\napi-key: file-key\n")
	t.Setenv("HWTEST_SERVER", "env:1")
	t.Setenv("HWTEST_ID", "env-id")
	t.Setenv("HWTEST_LABEL", "a=1, b=2")
	t.Setenv("HWTEST_KEY_ALIAS", "alias-key")
	fs, af := testFlags(t, "--server", "flag:1")
	if err := testSources(file).apply(fs); err != nil {
		t.Fatal(err)
	}
	if af.server != "flag:1" {
		t.Errorf("server %q: the flag should win", af.server)
	}
	if af.id != "env-id" {
		t.Errorf("id %q: the environment should beat the file", af.id)
	}
	if !slices.Equal(af.labels, []string{"a=1", "b=2"}) {
		t.Errorf("labels %q: want the comma-separated environment list", af.labels)
	}
	if af.maxInFlight != 3 {
		t.Errorf("max-in-flight %d: want the file's", af.maxInFlight)
	}
	if af.apiKey != "alias-key" {
		t.Errorf("api-key %q: the alias variable should beat the file", af.apiKey)
	}
	t.Setenv("HWTEST_API_KEY", "prefixed-key")
	fs, af = testFlags(t)
	if err := testSources(file).apply(fs); err != nil {
		t.Fatal(err)
	}
	if af.apiKey != "prefixed-key" {
		t.Errorf("api-key %q: the prefixed variable should beat the alias", af.apiKey)
	}
	// A list flag on the command line is not extended by other sources.
	fs, af = testFlags(t, "--label", "x=y")
	if err := testSources(file).apply(fs); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(af.labels, []string{"x=y"}) {
		t.Errorf("labels %q, want only the flag's", af.labels)
	}
}

func TestFlagSourcesDefaultsKept(t *testing.T) {
	fs, af := testFlags(t)
	if err := testSources("").apply(fs); err != nil {
		t.Fatal(err)
	}
	if af.server != "127.0.0.1:7070" || af.maxInFlight == 0 || len(af.labels) != 0 {
		t.Fatalf("defaults changed: %+v", af)
	}
}

func TestFlagSourcesErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, env, want string
	}{
		{"unknown keys", "server: a:1\nmax_in_flight: 2\nlabels: [a=b]\n", "", "unknown key(s) labels, max_in_flight"},
		{"config in file", "config: other.yaml\n", "", "unknown key(s) config"},
		{"bad int in file", "max-in-flight: lots\n", "", "max-in-flight"},
		{"list for scalar", "server: [a, b]\n", "", "expected a single value"},
		{"not a mapping", "- server\n", "", "expected a YAML or JSON mapping"},
		{"bad int in env", "", "HWTEST_MAX_IN_FLIGHT=lots", "HWTEST_MAX_IN_FLIGHT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := ""
			if tc.file != "" {
				file = writeFile(t, "agent.yaml", tc.file)
			}
			if k, v, ok := strings.Cut(tc.env, "="); ok {
				t.Setenv(k, v)
			}
			fs, _ := testFlags(t)
			err := testSources(file).apply(fs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	if got := envName(agentEnvPrefix, "max-in-flight"); got != "HOOKWIRE_AGENT_MAX_IN_FLIGHT" {
		t.Fatalf("envName = %q", got)
	}
}
