package main

// agents and join-tokens commands (AgentAdminService, admin key only).

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func (c *cli) agentsCmd() *cobra.Command {
	return c.noun("agents", "Show and drain the delivery agents (admin key)",
		`Agents dial out to the control plane and make the deliveries. 'agents list'
shows the connected ones and those lost recently (silent for three heartbeat
intervals); 'agents drain' asks one to finish what it holds and disconnect.
These commands need the admin key.`,
		nil, true, c.agentsListCmd(), c.agentsDrainCmd())
}

func agentState(a *hookwirev1.Agent) string { return enumLabel(a.GetState().String(), "AGENT_STATE_") }

func (c *cli) agentsListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List connected and recently lost agents",
		Example: "  hookwire agents list\n  hookwire agents list -o json | jq -r '.agents[] | select(.state == \"AGENT_STATE_CONNECTED\") | .id'",
		Args:    c.argNames(),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, _ []string) error {
		ctx, cancel := c.call(cmd)
		defer cancel()
		resp, err := hookwirev1.NewAgentAdminServiceClient(c.conn).ListAgents(ctx, &hookwirev1.ListAgentsRequest{})
		if err != nil {
			return err
		}
		list := resp.GetAgents()
		return emitList(c, cmd, "agents", list, "", func(w io.Writer) error {
			if len(list) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No agents are connected. Start one with 'hookwire agent --server ADDR'.")
				return nil
			}
			t := newTable(w, "ID", "STATE", "TRANSPORTS", "IN FLIGHT", "CREDIT", "VERSION", "LABELS", "JOIN TOKEN", "CONNECTED", "LAST SEEN")
			for _, a := range list {
				t.row(a.GetId(), agentState(a), dash(strings.Join(a.GetTransports(), ",")), strconv.Itoa(int(a.GetInFlight())),
					strconv.Itoa(int(a.GetCredit())), dash(a.GetVersion()), dash(joinMap(a.GetLabels())), dash(a.GetJoinTokenId()),
					ago(a.GetConnectTime()), ago(a.GetLastSeenTime()))
			}
			return t.flush()
		})
	})
	return cmd
}

func (c *cli) agentsDrainCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "drain ID",
		Short: "Ask a connected agent to finish its work and disconnect",
		Long: `Ask a connected agent to stop taking work: it finishes the deliveries it
holds, reports them, and disconnects. Use it before stopping or upgrading
an agent's host.`,
		Example: "  hookwire agents drain edge-eu-1\n  hookwire agents drain edge-eu-1 --reason 'kernel upgrade'",
		Args:    c.argNames("ID"),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, args []string) error {
		ctx, cancel := c.call(cmd)
		defer cancel()
		resp, err := hookwirev1.NewAgentAdminServiceClient(c.conn).DrainAgent(ctx, &hookwirev1.DrainAgentRequest{Id: args[0], Reason: reason})
		if err != nil {
			return notFoundHint(err, "list the connected agents with 'hookwire agents list'")
		}
		return c.emit(cmd, resp, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "Draining %s: it finishes what it holds, then disconnects.\n", args[0])
			return err
		})
	})
	cmd.Flags().StringVar(&reason, "reason", "", "why, logged by the agent (default \"drained by an operator\")")
	return cmd
}

func (c *cli) joinTokensCmd() *cobra.Command {
	return c.noun("join-tokens", "Issue and revoke the tokens agents join with (admin key)",
		`A join token (hwj_...) lets an agent connect without the admin key: pass it
to 'hookwire agent --api-key' or HOOKWIRE_API_KEY. Labels on a token must be
carried, with the same values, by every agent joining with it. Revoking a
token disconnects the agents that joined with it. These commands need the
admin key.`,
		[]string{"join-token"}, true, c.joinTokensCreateCmd(), c.joinTokensListCmd(), c.joinTokensRevokeCmd())
}

func joinTokenView(t *hookwirev1.JoinToken) func(io.Writer) error {
	return func(w io.Writer) error {
		f := newFields(w)
		f.add("ID", t.GetId())
		f.add("Name", t.GetName())
		f.add("Labels", joinMap(t.GetLabels()))
		f.add("Created", stamp(t.GetCreateTime()))
		f.add("Expires", stamp(t.GetExpireTime()))
		if t.GetRevoked() {
			f.add("Revoked", "yes")
		}
		f.add("Token", t.GetToken())
		return f.flush()
	}
}

func (c *cli) joinTokensCreateCmd() *cobra.Command {
	var (
		name    string
		labels  []string
		expires time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Issue a join token; its value is shown once",
		Example: `  hookwire join-tokens create --name edge-eu --label region=eu --expires 720h
  TOKEN=$(hookwire join-tokens create --name ci -o json | jq -r .token)`,
		Args: c.argNames(),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, _ []string) error {
		lm, err := parseKeyValues("label", labels)
		if err != nil {
			return err
		}
		req := &hookwirev1.CreateJoinTokenRequest{Name: name, Labels: lm}
		if cmd.Flags().Changed("expires") {
			if expires <= 0 {
				return usageErrorf("--expires %s: give a positive duration such as 720h", expires)
			}
			req.ExpireTime = timestamppb.New(time.Now().Add(expires))
		}
		ctx, cancel := c.call(cmd)
		defer cancel()
		t, err := hookwirev1.NewAgentAdminServiceClient(c.conn).CreateJoinToken(ctx, req)
		if err != nil {
			return err
		}
		warnSecret(cmd, "join token")
		return c.emit(cmd, t, joinTokenView(t))
	})
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "a name for people")
	f.StringArrayVar(&labels, "label", nil, "key=value every agent joining with the token must carry (repeatable)")
	f.DurationVar(&expires, "expires", 0, "refuse the token after this long, e.g. 720h (default: never)")
	return cmd
}

func (c *cli) joinTokensListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List join tokens (never their values)",
		Example: "  hookwire join-tokens list\n  hookwire join-tokens list -o json",
		Args:    c.argNames(),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, _ []string) error {
		ctx, cancel := c.call(cmd)
		defer cancel()
		resp, err := hookwirev1.NewAgentAdminServiceClient(c.conn).ListJoinTokens(ctx, &hookwirev1.ListJoinTokensRequest{})
		if err != nil {
			return err
		}
		list := resp.GetJoinTokens()
		sort.SliceStable(list, func(i, j int) bool { return list[i].GetId() < list[j].GetId() })
		return emitList(c, cmd, "join_tokens", list, "", func(w io.Writer) error {
			if len(list) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No join tokens. Issue one with 'hookwire join-tokens create'.")
				return nil
			}
			t := newTable(w, "ID", "NAME", "LABELS", "STATE", "EXPIRES", "CREATED")
			for _, jt := range list {
				state := "active"
				switch {
				case jt.GetRevoked():
					state = "revoked"
				case jt.GetExpireTime() != nil && jt.GetExpireTime().AsTime().Before(time.Now()):
					state = "expired"
				}
				exp := "never"
				if jt.GetExpireTime() != nil {
					exp = ago(jt.GetExpireTime())
				}
				t.row(jt.GetId(), dash(jt.GetName()), dash(joinMap(jt.GetLabels())), state, exp, ago(jt.GetCreateTime()))
			}
			return t.flush()
		})
	})
	return cmd
}

func (c *cli) joinTokensRevokeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "revoke ID",
		Short:   "Make a join token unusable and disconnect the agents that joined with it",
		Example: "  hookwire join-tokens revoke hwj_01J...",
		Args:    c.argNames("ID"),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, args []string) error {
		ctx, cancel := c.call(cmd)
		defer cancel()
		t, err := hookwirev1.NewAgentAdminServiceClient(c.conn).RevokeJoinToken(ctx, &hookwirev1.RevokeJoinTokenRequest{Id: args[0]})
		if err != nil {
			return notFoundHint(err, "list the join tokens with 'hookwire join-tokens list'")
		}
		return c.emit(cmd, t, func(w io.Writer) error {
			fmt.Fprintf(w, "Revoked %s; agents that joined with it were disconnected.\n", t.GetId())
			return nil
		})
	})
	return cmd
}
