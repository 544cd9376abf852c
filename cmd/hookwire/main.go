// Command hookwire is Hookwire's single binary: the control plane
// (`server`), the delivery agent (`agent`), both in one process for
// development (`dev`), and, hidden, the built-in transport plugins
// (`plugin <name>`), which agents start by re-executing this binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hookwire/hookwire/internal/buildinfo"
	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

// exitError carries an exit code other than 1.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "hookwire",
		Short: "Signed, reliable webhook delivery through agents at the edge",
		Long: `Hookwire delivers events to subscribers, signed (Standard Webhooks), at least
once, with retries and a record of every attempt. A control plane keeps the
state; agents that dial out to it deliver from wherever the targets are.

Start everything in one process:  hookwire dev`,
		SilenceUsage:  true,
		SilenceErrors: false,
		Version:       version,
	}
	// --version prints what `hookwire version` prints.
	root.SetVersionTemplate(buildinfo.Get().String())
	root.AddCommand(newServerCmd(), newAgentCmd(), newDevCmd(), newSinkCmd(), newPluginCmd())
	root.AddCommand(clientCommands()...)
	root.AddCommand(toolCommands()...)
	root.AddCommand(newVersionCmd())
	return root
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
