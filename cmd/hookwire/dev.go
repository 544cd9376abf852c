package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hookwire/hookwire/controlplane"
	"github.com/spf13/cobra"
)

const devKeyFile = "admin.key"

// devAdminKey returns the dev admin key: $HOOKWIRE_ADMIN_KEY, else the one
// kept in the data directory (created on first run, mode 0600), so every
// `hookwire dev` can print it.
func devAdminKey(dir string) (string, error) {
	if k := os.Getenv("HOOKWIRE_ADMIN_KEY"); k != "" {
		return k, nil
	}
	path := filepath.Join(dir, devKeyFile)
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := makeDevDir(dir); err != nil {
		return "", err
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	key := "hwk_dev_" + base64.RawURLEncoding.EncodeToString(b)
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save dev admin key: %w", err)
	}
	return key, nil
}

// DevAdminAddr is where `hookwire dev` serves /metrics, /healthz and
// /readyz unless --admin-addr says otherwise.
const DevAdminAddr = "127.0.0.1:9464"

// makeDevDir creates the dev data directory with a .gitignore of "*": it
// holds an admin key, a master key and the database, none of which
// belongs in the repository it is usually created in.
func makeDevDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ignore := filepath.Join(dir, ".gitignore")
	if _, err := os.Stat(ignore); errors.Is(err, os.ErrNotExist) {
		content := "# Written by hookwire dev: keys and data of a local development server.\n*\n"
		if err := os.WriteFile(ignore, []byte(content), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", ignore, err)
		}
	}
	return nil
}

func newDevCmd() *cobra.Command {
	var sf serverFlags
	var af agentFlags
	var lf logFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the control plane and an agent in one process, for development",
		Long: `Run everything in one process: the control plane with its bbolt store in
--data-dir, and an agent with the built-in transports. The agent may deliver
to loopback targets, so a receiver on localhost works. Prints the addresses,
the admin key and a quickstart. Every flag may also come from the environment
as HOOKWIRE_DEV_<FLAG> or from a --config file, as for "hookwire server".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := lf.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if err := makeDevDir(sf.dataDir); err != nil {
				return err
			}
			key, err := devAdminKey(sf.dataDir)
			if err != nil {
				return err
			}
			warnPlaintext(log, sf.grpcAddr, sf.httpAddr)
			cfg := sf.config(log, key)
			// The server seals what the agent's plugins declare secret.
			pf := serverPluginFlags{dir: af.pluginDir, pins: af.pluginPins}
			if cfg.SecretConfigFields, err = pf.secretConfigFields(cmd.Context(), log); err != nil {
				return err
			}
			if cfg.MasterKey, err = devMasterKey(sf.dataDir); err != nil {
				return err
			}
			tp, stopTracing, err := setupTracing(cmd.Context(), log, "hookwire-dev", cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer stopTracing() // after the server and agent stop: the last spans are flushed
			cfg.TracerProvider = tp
			af.tracerProvider = tp
			tuneGC()
			srv, err := controlplane.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer srv.Close()
			printQuickstart(cmd.OutOrStdout(), srv, key)
			af.server = srv.GRPCAddr()
			af.apiKey = key
			if af.id == "" {
				af.id = "dev-agent"
			}
			af.dev = true // transports may connect to loopback; http may use plain http
			agentErr := make(chan error, 1)
			go func() { agentErr <- runAgent(cmd.Context(), log, af) }()
			select {
			case err := <-agentErr:
				if err != nil {
					return fmt.Errorf("agent: %w", err)
				}
				return nil
			case err := <-srv.Err():
				return err
			}
		},
	}
	sf.register(cmd.Flags(), ".hookwire-dev")
	admin := cmd.Flags().Lookup("admin-addr")
	admin.DefValue = DevAdminAddr
	_ = admin.Value.Set(DevAdminAddr)
	admin.Usage = strings.Replace(admin.Usage, "empty: off", `"" or "off": none`, 1)
	af.register(cmd.Flags())
	lf.register(cmd.Flags())
	configurable(cmd, devEnvPrefix, nil)
	return cmd
}

func printQuickstart(w io.Writer, srv *controlplane.Server, key string) {
	api := "http://" + srv.HTTPAddr()
	fmt.Fprintf(w, `Hookwire dev is running.
  gRPC API   %s
  REST API   %s
  console    %s/console/   (sign in with the admin key)
  admin      %s   (/metrics, /healthz, /readyz; no key)
  admin key  %s

Quickstart (in another terminal):
  export HW=%s KEY=%s
  hookwire sink --addr 127.0.0.1:9000 &   # a receiver that prints what it gets
  curl -s -H "Authorization: Bearer $KEY" -d '{"id":"acme"}' $HW/v1/tenants
  curl -s -H "Authorization: Bearer $KEY" -d '{"event_types":["order.*"],"target":{"transport":"http","config":{"url":"http://127.0.0.1:9000/hook"}}}' $HW/v1/tenants/acme/subscriptions
  curl -s -H "Authorization: Bearer $KEY" -d '{"type":"order.created","payload":{"id":42}}' $HW/v1/tenants/acme/events
  curl -s -H "Authorization: Bearer $KEY" $HW/v1/tenants/acme/deliveries

`, srv.GRPCAddr(), api, api, adminURL(srv), key, api, key)
}

func adminURL(srv *controlplane.Server) string {
	if a := srv.AdminAddr(); a != "" {
		return "http://" + a
	}
	return "off (--admin-addr)"
}
