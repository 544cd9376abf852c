package main

// Connection settings for the client commands: the config file with named
// contexts, the precedence of flags, contexts and environment variables,
// and the `context` commands.

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/hookwire/hookwire/internal/tlsutil"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

const environmentText = `The client commands find the control plane and the API key like this, first
match wins, per setting:

  1. the flag: --addr, --api-key, --tenant, --tls, --ca-file, --cert-file, --key-file
  2. the context named by --context
  3. the environment: HOOKWIRE_ADDR, HOOKWIRE_API_KEY, HOOKWIRE_TENANT
  4. the current context: the one named by HOOKWIRE_CONTEXT, else current_context
     in the config file
  5. the default: address 127.0.0.1:7070, no API key, no tenant

So plain flags beat the environment, which beats the config file; naming a
context with --context means "use that context" even where an environment
variable is set. A context's tls, ca_file, cert_file and key_file apply when
the address comes from that context; --tls and --ca-file always apply. The
client certificate (mTLS, for a server started with --tls-client-ca) is
--cert-file/--key-file, else the address's context's cert_file/key_file, else
HOOKWIRE_CERT_FILE/HOOKWIRE_KEY_FILE; it implies TLS.

The config file is $HOOKWIRE_CONFIG, else $XDG_CONFIG_HOME/hookwire/config.yaml,
else ~/.config/hookwire/config.yaml:

  current_context: local
  contexts:
    local:
      addr: 127.0.0.1:7070
      api_key: hwk_...
      tenant: acme          # default for --tenant
    prod:
      addr: hookwire.internal.example.com:7070
      api_key: hwk_...
      tls: true
      ca_file: /etc/hookwire/ca.pem
      cert_file: /etc/hookwire/client.pem   # mTLS client certificate
      key_file: /etc/hookwire/client-key.pem

Manage it with 'hookwire context set|use|list|current|delete'. The file is
written with mode 0600 because it holds keys; 'context list' masks them.`

// cliConfig is the config file.
type cliConfig struct {
	CurrentContext string                    `yaml:"current_context,omitempty"`
	Contexts       map[string]*contextConfig `yaml:"contexts,omitempty"`
}

// contextConfig is one named context.
type contextConfig struct {
	Addr     string `yaml:"addr,omitempty"`
	APIKey   string `yaml:"api_key,omitempty"`
	Tenant   string `yaml:"tenant,omitempty"`
	TLS      bool   `yaml:"tls,omitempty"`
	CAFile   string `yaml:"ca_file,omitempty"`
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
}

// configPath is where the config file lives.
func configPath() (string, error) {
	if p := os.Getenv("HOOKWIRE_CONFIG"); p != "" {
		return p, nil
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the config file: %w; set HOOKWIRE_CONFIG", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "hookwire", "config.yaml"), nil
}

// loadConfig reads the config file; a missing file is an empty config.
func loadConfig(path string) (*cliConfig, error) {
	cfg := &cliConfig{}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config file %s: %v", path, err)
	}
	for name, ctx := range cfg.Contexts {
		if ctx == nil {
			cfg.Contexts[name] = &contextConfig{}
		}
	}
	return cfg, nil
}

// save writes the config atomically with mode 0600.
func (cfg *cliConfig) save(path string) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	data := buf.Bytes()
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// setting is a resolved value and where it came from (for hints).
type setting struct {
	value, source string
}

// settings are the resolved connection settings.
type settings struct {
	addr, apiKey, tenant setting
	tls                  bool
	caFile               string
	// certFile and keyFile are the client certificate for mTLS.
	certFile, keyFile setting
}

// resolve applies the precedence described in environmentText.
func (c *cli) resolve(cmd *cobra.Command) (settings, error) {
	path, err := configPath()
	if err != nil {
		return settings{}, err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return settings{}, err
	}
	lookup := func(name, from string) (*contextConfig, error) {
		ctx, ok := cfg.Contexts[name]
		if !ok {
			return nil, usageErrorf("context %q (from %s) is not in %s; see 'hookwire context list'", name, from, path)
		}
		return ctx, nil
	}
	var named, current *contextConfig
	var namedSrc, currentSrc string
	if flagChanged(cmd, "context") {
		if named, err = lookup(c.contextName, "--context"); err != nil {
			return settings{}, err
		}
		namedSrc = fmt.Sprintf("context %q", c.contextName)
	} else {
		name, from := os.Getenv("HOOKWIRE_CONTEXT"), "HOOKWIRE_CONTEXT"
		if name == "" {
			name, from = cfg.CurrentContext, "current_context"
		}
		if name != "" {
			if current, err = lookup(name, from); err != nil {
				return settings{}, err
			}
			currentSrc = fmt.Sprintf("context %q", name)
		}
	}
	pick := func(flag, flagValue, env string, field func(*contextConfig) string, def string) setting {
		if flagChanged(cmd, flag) {
			return setting{flagValue, "--" + flag}
		}
		if named != nil && field(named) != "" {
			return setting{field(named), namedSrc}
		}
		if v := os.Getenv(env); v != "" {
			return setting{v, env}
		}
		if current != nil && field(current) != "" {
			return setting{field(current), currentSrc}
		}
		return setting{def, "default"}
	}
	s := settings{
		addr:   pick("addr", c.addr, "HOOKWIRE_ADDR", func(x *contextConfig) string { return x.Addr }, defaultAddr),
		apiKey: pick("api-key", c.apiKey, "HOOKWIRE_API_KEY", func(x *contextConfig) string { return x.APIKey }, ""),
		tenant: pick("tenant", tenantFlag(cmd), "HOOKWIRE_TENANT", func(x *contextConfig) string { return x.Tenant }, ""),
	}
	// TLS settings travel with the address: a context's apply only when
	// the address comes from that context.
	var ctx *contextConfig
	switch s.addr.source {
	case namedSrc:
		ctx = named
	case currentSrc:
		ctx = current
	}
	switch {
	case flagChanged(cmd, "tls"):
		s.tls = c.useTLS
	case ctx != nil:
		s.tls = ctx.TLS
	}
	switch {
	case flagChanged(cmd, "ca-file"):
		s.caFile = c.caFile
	case ctx != nil:
		s.caFile = ctx.CAFile
	}
	clientFile := func(flag, flagValue, env string, field func(*contextConfig) string) setting {
		switch {
		case flagChanged(cmd, flag):
			return setting{flagValue, "--" + flag}
		case ctx != nil && field(ctx) != "":
			return setting{field(ctx), s.addr.source}
		case os.Getenv(env) != "":
			return setting{os.Getenv(env), env}
		}
		return setting{}
	}
	s.certFile = clientFile("cert-file", c.certFile, "HOOKWIRE_CERT_FILE", func(x *contextConfig) string { return x.CertFile })
	s.keyFile = clientFile("key-file", c.keyFile, "HOOKWIRE_KEY_FILE", func(x *contextConfig) string { return x.KeyFile })
	switch {
	case s.certFile.value != "" && s.keyFile.value == "":
		return settings{}, usageErrorf("client certificate %s (from %s) has no key: pass --key-file, set HOOKWIRE_KEY_FILE or key_file in the context", s.certFile.value, s.certFile.source)
	case s.keyFile.value != "" && s.certFile.value == "":
		return settings{}, usageErrorf("client key %s (from %s) has no certificate: pass --cert-file, set HOOKWIRE_CERT_FILE or cert_file in the context", s.keyFile.value, s.keyFile.source)
	}
	if s.caFile != "" || s.certFile.value != "" || strings.HasPrefix(s.addr.value, "https://") {
		s.tls = true
	}
	s.addr.value = normalizeAddr(s.addr.value)
	return s, nil
}

func flagChanged(cmd *cobra.Command, name string) bool {
	f := cmd.Flags().Lookup(name)
	return f != nil && f.Changed
}

func tenantFlag(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("tenant"); f != nil {
		return f.Value.String()
	}
	return ""
}

// tenant returns the resolved tenant or a usage error.
func (c *cli) tenant() (string, error) {
	if t := c.settings.tenant.value; t != "" {
		return t, nil
	}
	return "", errNoTenant()
}

func errNoTenant() error {
	return usageErrorf("no tenant: pass --tenant, set HOOKWIRE_TENANT, or save one in a context ('hookwire context set NAME --tenant ID')")
}

// addTenantFlag registers --tenant on a command that works within a tenant.
func (c *cli) addTenantFlag(cmd *cobra.Command) {
	cmd.Flags().String("tenant", "", "tenant id (env HOOKWIRE_TENANT, or the context's tenant)")
	_ = cmd.RegisterFlagCompletionFunc("tenant", c.completeTenants)
}

// maskKey shows enough of a key to recognise it, never all of it. Tenant
// keys keep their public id ("hwk_<16>"), which 'api-keys list' shows too.
func maskKey(key string) string {
	switch {
	case key == "":
		return "(none)"
	case strings.HasPrefix(key, "hwk_") && len(key) == 4+16+1+32 && key[20] == '_':
		return key[:21] + "…" + key[len(key)-4:]
	case len(key) >= 16:
		return key[:4] + "…" + key[len(key)-4:]
	}
	return "****"
}

var contextName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (c *cli) contextCmd() *cobra.Command {
	return c.noun("context", "Manage named connection settings (address, API key, tenant)",
		`A context is a named set of connection settings kept in the config file, like
kubectl's contexts. The current context applies to every client command unless
flags, --context or environment variables say otherwise; see
'hookwire help environment' for the exact precedence.`,
		[]string{"contexts", "ctx"}, false,
		c.contextSetCmd(), c.contextUseCmd(), c.contextListCmd(), c.contextCurrentCmd(), c.contextDeleteCmd())
}

func (c *cli) contextSetCmd() *cobra.Command {
	var ctx contextConfig
	cmd := &cobra.Command{
		Use:   "set NAME",
		Short: "Create or change a context",
		Long: `Create a context, or change the given settings of an existing one (settings
whose flags are not passed stay as they are). The first context created
becomes the current one.

Pass --api-key - to read the key from stdin, which keeps it out of your shell
history.`,
		Example: `  hookwire context set local --addr 127.0.0.1:7070 --api-key "$HOOKWIRE_ADMIN_KEY"
  hookwire context set acme --addr cp.example.com:7070 --tls --tenant acme --api-key - < acme.key
  hookwire context set acme --tenant acme-eu     # change one setting`,
		Args: c.argNames("NAME"),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return completeContexts(nil, nil, "")
		},
	}
	cmd.RunE = c.run(func(cmd *cobra.Command, args []string) error {
		name := args[0]
		if !contextName.MatchString(name) {
			return usageErrorf("context name %q: use letters, digits, '.', '_' and '-'", name)
		}
		if flagChanged(cmd, "api-key") && ctx.APIKey == "-" {
			data, err := readAll(cmd, cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("read API key from stdin: %w", err)
			}
			key, _, _ := strings.Cut(string(data), "\n")
			ctx.APIKey = strings.TrimSpace(key)
			if ctx.APIKey == "" {
				return usageErrorf("--api-key -: stdin was empty")
			}
		}
		path, err := configPath()
		if err != nil {
			return err
		}
		cfg, err := loadConfig(path)
		if err != nil {
			return err
		}
		if cfg.Contexts == nil {
			cfg.Contexts = map[string]*contextConfig{}
		}
		existing, ok := cfg.Contexts[name]
		if !ok {
			existing = &contextConfig{}
			cfg.Contexts[name] = existing
		}
		changed := false
		for flag, apply := range map[string]func(){
			"addr":      func() { existing.Addr = ctx.Addr },
			"api-key":   func() { existing.APIKey = ctx.APIKey },
			"tenant":    func() { existing.Tenant = ctx.Tenant },
			"tls":       func() { existing.TLS = ctx.TLS },
			"ca-file":   func() { existing.CAFile = ctx.CAFile },
			"cert-file": func() { existing.CertFile = ctx.CertFile },
			"key-file":  func() { existing.KeyFile = ctx.KeyFile },
		} {
			if flagChanged(cmd, flag) {
				apply()
				changed = true
			}
		}
		if ok && !changed {
			return usageErrorf("nothing to change: pass at least one of --addr, --api-key, --tenant, --tls, --ca-file, --cert-file, --key-file")
		}
		for _, file := range []*string{&existing.CAFile, &existing.CertFile, &existing.KeyFile} {
			if *file != "" {
				if abs, err := filepath.Abs(*file); err == nil {
					*file = abs
				}
			}
		}
		if (existing.CertFile == "") != (existing.KeyFile == "") {
			return usageErrorf("a client certificate needs both --cert-file and --key-file")
		}
		made := ""
		if cfg.CurrentContext == "" {
			cfg.CurrentContext = name
			made = " and made it the current context"
		}
		if err := cfg.save(path); err != nil {
			return err
		}
		verb := "Updated"
		if !ok {
			verb = "Created"
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s context %q in %s%s.\n", verb, name, path, made)
		return nil
	})
	f := cmd.Flags()
	f.StringVar(&ctx.Addr, "addr", "", "control plane gRPC address, host:port")
	f.StringVar(&ctx.APIKey, "api-key", "", `API key ("-" reads it from stdin)`)
	f.StringVar(&ctx.Tenant, "tenant", "", "default tenant for commands that take --tenant")
	f.BoolVar(&ctx.TLS, "tls", false, "connect with TLS")
	f.StringVar(&ctx.CAFile, "ca-file", "", "PEM file of CA certificates to trust; implies TLS")
	f.StringVar(&ctx.CertFile, "cert-file", "", "PEM client certificate for mTLS (with --key-file); implies TLS")
	f.StringVar(&ctx.KeyFile, "key-file", "", "PEM private key of --cert-file")
	return cmd
}

func (c *cli) contextUseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:               "use NAME",
		Short:             "Make a context the current one",
		Example:           "  hookwire context use prod",
		Args:              c.argNames("NAME"),
		ValidArgsFunction: completeContexts,
	}
	cmd.RunE = c.run(func(cmd *cobra.Command, args []string) error {
		path, cfg, err := loadConfigAt()
		if err != nil {
			return err
		}
		if _, ok := cfg.Contexts[args[0]]; !ok {
			return localNotFound{msg: fmt.Sprintf("context %q is not in %s", args[0], path)}
		}
		cfg.CurrentContext = args[0]
		if err := cfg.save(path); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Switched to context %q.\n", args[0])
		return nil
	})
	return cmd
}

func loadConfigAt() (string, *cliConfig, error) {
	path, err := configPath()
	if err != nil {
		return "", nil, err
	}
	cfg, err := loadConfig(path)
	return path, cfg, err
}

// contextView is how a context is listed: its key masked.
type contextView struct {
	Name     string `json:"name"`
	Current  bool   `json:"current"`
	Addr     string `json:"addr,omitempty"`
	APIKey   string `json:"api_key,omitempty"`
	Tenant   string `json:"tenant,omitempty"`
	TLS      bool   `json:"tls,omitempty"`
	CAFile   string `json:"ca_file,omitempty"`
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
}

func (c *cli) contextListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List contexts (API keys masked)",
		Example: "  hookwire context list\n  hookwire context list -o json",
		Args:    c.argNames(),
	}
	cmd.RunE = c.run(func(cmd *cobra.Command, _ []string) error {
		path, cfg, err := loadConfigAt()
		if err != nil {
			return err
		}
		names := make([]string, 0, len(cfg.Contexts))
		for n := range cfg.Contexts {
			names = append(names, n)
		}
		sort.Strings(names)
		views := make([]contextView, 0, len(names))
		for _, n := range names {
			x := cfg.Contexts[n]
			v := contextView{Name: n, Current: n == cfg.CurrentContext, Addr: x.Addr, Tenant: x.Tenant, TLS: x.TLS, CAFile: x.CAFile, CertFile: x.CertFile, KeyFile: x.KeyFile}
			if x.APIKey != "" {
				v.APIKey = maskKey(x.APIKey)
			}
			views = append(views, v)
		}
		if c.output != "table" {
			return writeValue(cmd.OutOrStdout(), c.output, struct {
				ConfigFile     string        `json:"config_file"`
				CurrentContext string        `json:"current_context"`
				Contexts       []contextView `json:"contexts"`
			}{path, cfg.CurrentContext, views})
		}
		if len(views) == 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "No contexts in %s. Create one with: hookwire context set NAME --addr HOST:PORT --api-key KEY\n", path)
			return nil
		}
		tw := newTable(cmd.OutOrStdout(), "CURRENT", "NAME", "ADDR", "TENANT", "API KEY", "TLS")
		for _, v := range views {
			cur := ""
			if v.Current {
				cur = "*"
			}
			tls := "no"
			switch {
			case v.CertFile != "":
				tls = "mtls"
			case v.TLS || v.CAFile != "":
				tls = "yes"
			}
			tw.row(cur, v.Name, dash(v.Addr), dash(v.Tenant), dash(v.APIKey), tls)
		}
		return tw.flush()
	})
	return cmd
}

func (c *cli) contextCurrentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "current",
		Short:   "Print the name of the current context",
		Long:    "Print the current context: HOOKWIRE_CONTEXT if set, else current_context from the config file.",
		Example: "  hookwire context current",
		Args:    c.argNames(),
	}
	cmd.RunE = c.run(func(cmd *cobra.Command, _ []string) error {
		path, cfg, err := loadConfigAt()
		if err != nil {
			return err
		}
		name := os.Getenv("HOOKWIRE_CONTEXT")
		if name == "" {
			name = cfg.CurrentContext
		}
		if name == "" {
			return localNotFound{msg: fmt.Sprintf("no current context in %s", path)}
		}
		fmt.Fprintln(cmd.OutOrStdout(), name)
		return nil
	})
	return cmd
}

func (c *cli) contextDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:               "delete NAME",
		Aliases:           []string{"rm"},
		Short:             "Delete a context",
		Example:           "  hookwire context delete old-staging",
		Args:              c.argNames("NAME"),
		ValidArgsFunction: completeContexts,
	}
	cmd.RunE = c.run(func(cmd *cobra.Command, args []string) error {
		path, cfg, err := loadConfigAt()
		if err != nil {
			return err
		}
		if _, ok := cfg.Contexts[args[0]]; !ok {
			return localNotFound{msg: fmt.Sprintf("context %q is not in %s", args[0], path)}
		}
		delete(cfg.Contexts, args[0])
		note := ""
		if cfg.CurrentContext == args[0] {
			cfg.CurrentContext = ""
			note = "; there is no current context now ('hookwire context use NAME')"
		}
		if err := cfg.save(path); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Deleted context %q%s.\n", args[0], note)
		return nil
	})
	return cmd
}

// completeContexts completes context names from the config file.
func completeContexts(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	_, cfg, err := loadConfigAt()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, 0, len(cfg.Contexts))
	for n := range cfg.Contexts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, cobra.ShellCompDirectiveNoFileComp
}

// clientTLS is the TLS configuration of the resolved settings: the CA file
// to trust (else the system's CAs) and the client certificate for mTLS.
func (s settings) clientTLS() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.caFile != "" {
		pool, err := tlsutil.LoadCAPool(s.caFile, "CA file")
		if errors.Is(err, tlsutil.ErrNoCertificate) {
			return nil, usageErrorf("%v", err)
		}
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if s.certFile.value != "" {
		cert, err := tls.LoadX509KeyPair(s.certFile.value, s.keyFile.value)
		if err != nil {
			return nil, usageErrorf("client certificate %s (from %s) and key %s (from %s): %v", s.certFile.value, s.certFile.source, s.keyFile.value, s.keyFile.source, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
