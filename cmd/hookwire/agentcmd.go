package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/hookwire/hookwire/agent"
	"github.com/hookwire/hookwire/agent/pluginhost"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

type agentFlags struct {
	server      string
	apiKey      string
	id          string
	labels      []string
	maxInFlight int
}

func (f *agentFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.id, "id", "", "agent id, stable across restarts (default: hostname plus a random suffix)")
	fs.StringSliceVar(&f.labels, "label", nil, "label key=value for agent selectors (repeatable)")
	fs.IntVar(&f.maxInFlight, "max-in-flight", agent.DefaultMaxInFlight, "deliveries this agent runs at once")
}

func parseLabels(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: expected key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

// runAgent starts the built-in plugins and runs an agent until ctx ends.
func runAgent(ctx context.Context, log *slog.Logger, f agentFlags) error {
	labels, err := parseLabels(f.labels)
	if err != nil {
		return err
	}
	specs, err := builtinSpecs()
	if err != nil {
		return err
	}
	host := pluginhost.New(log)
	defer host.Close()
	// Plugins outlive ctx: on SIGTERM the agent drains through them first,
	// and the deferred Close stops them after Run returns.
	if err := host.Start(context.WithoutCancel(ctx), specs); err != nil {
		return fmt.Errorf("start transport plugins: %w", err)
	}
	a, err := agent.New(agent.Config{
		ServerAddr:  f.server,
		APIKey:      f.apiKey,
		AgentID:     f.id,
		Labels:      labels,
		MaxInFlight: f.maxInFlight,
		Transports:  host,
		Logger:      log,
		Version:     version,
	})
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

func newAgentCmd() *cobra.Command {
	var af agentFlags
	var lf logFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a delivery agent that dials out to the control plane",
		Long: `Run a delivery agent. It connects out to the control plane (no inbound port
needed), hosts the transport plugins, and delivers what it is assigned.
The API key may also come from HOOKWIRE_API_KEY.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := lf.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if af.apiKey == "" {
				af.apiKey = os.Getenv("HOOKWIRE_API_KEY")
			}
			if af.apiKey == "" {
				return fmt.Errorf("no API key: pass --api-key or set HOOKWIRE_API_KEY (the admin key printed by the server)")
			}
			return runAgent(cmd.Context(), log, af)
		},
	}
	cmd.Flags().StringVar(&af.server, "server", "127.0.0.1:7070", "control plane gRPC address")
	cmd.Flags().StringVar(&af.apiKey, "api-key", "", "API key (default $HOOKWIRE_API_KEY)")
	af.register(cmd.Flags())
	lf.register(cmd.Flags())
	return cmd
}
