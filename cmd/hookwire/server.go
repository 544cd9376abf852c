package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/hookwire/hookwire/controlplane"
	"github.com/hookwire/hookwire/plugins/builtin"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/structpb"
)

type serverFlags struct {
	dataDir         string
	grpcAddr        string
	httpAddr        string
	maxPayloadBytes int
}

func (f *serverFlags) register(fs *pflag.FlagSet, defaultDir string) {
	fs.StringVar(&f.dataDir, "data-dir", defaultDir, "directory for the bbolt store")
	fs.StringVar(&f.grpcAddr, "grpc-addr", controlplane.DefaultGRPCAddr, "gRPC API listen address (agents connect here)")
	fs.StringVar(&f.httpAddr, "http-addr", controlplane.DefaultHTTPAddr, `REST gateway listen address ("off" to disable)`)
	fs.IntVar(&f.maxPayloadBytes, "max-payload-bytes", controlplane.DefaultMaxPayloadBytes, "largest event payload accepted, in bytes")
}

func (f *serverFlags) config(log *slog.Logger, adminKey string) controlplane.Config {
	return controlplane.Config{
		DataDir:         f.dataDir,
		GRPCAddr:        f.grpcAddr,
		HTTPAddr:        f.httpAddr,
		MaxPayloadBytes: f.maxPayloadBytes,
		AdminKey:        adminKey,
		Logger:          log,
		ValidateTarget:  validateBuiltinTarget,
	}
}

// validateBuiltinTarget checks targets of built-in transports in-process;
// other transports are checked by the agents that host them.
func validateBuiltinTarget(ctx context.Context, transport string, config *structpb.Struct) ([]string, bool, error) {
	t, ok := builtin.New(transport)
	if !ok {
		return nil, false, nil
	}
	problems, err := t.Validate(ctx, config)
	return problems, true, err
}

func newServerCmd() *cobra.Command {
	var sf serverFlags
	var lf logFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane (gRPC API, REST gateway, store, dispatcher)",
		Long: `Run the control plane. Agents connect to --grpc-addr; producers publish over
gRPC or REST. On first start an admin API key is created and printed once;
set HOOKWIRE_ADMIN_KEY to choose it instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := lf.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			warnPlaintext(log, sf.grpcAddr, sf.httpAddr)
			srv, err := controlplane.Start(cmd.Context(), sf.config(log, os.Getenv("HOOKWIRE_ADMIN_KEY")))
			if err != nil {
				return err
			}
			if key := srv.NewAdminKey(); key != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "Admin API key (shown once, store it now): %s\n", key)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "gRPC %s  REST http://%s\n", srv.GRPCAddr(), srv.HTTPAddr())
			select {
			case <-cmd.Context().Done():
			case err := <-srv.Err():
				srv.Close()
				return err
			}
			return srv.Close()
		},
	}
	sf.register(cmd.Flags(), "hookwire-data")
	lf.register(cmd.Flags())
	return cmd
}

// warnPlaintext warns when a plaintext listener is reachable from other
// hosts. (TLS arrives with the agent security work.)
func warnPlaintext(log *slog.Logger, addrs ...string) {
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			continue
		}
		log.Warn("listening without TLS on a non-loopback address; API keys and payloads travel in clear", "addr", a)
	}
}
