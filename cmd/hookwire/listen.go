package main

// `hookwire listen`: forward a tenant's webhooks to a local server, for
// development. It runs an agent in this process with a label no other agent
// has, and points a subscription at the local URL with an agent selector
// naming that label, so only this listener delivers for it.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hookwire/hookwire/agent"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/hookwire/hookwire/plugins/sdk"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// listenLabel is the label key of a listener's agent; its value is random
// per run.
const listenLabel = "hookwire.listen"

func (c *cli) listenCmd() *cobra.Command {
	var (
		forwardTo, subID, agentID string
		eventTypes                []string
		maxInFlight               int
		verbose                   bool
	)
	cmd := &cobra.Command{
		Use:   "listen",
		Short: "Forward a tenant's webhooks to a local server, for development",
		Long: `Forward webhooks to a server on this machine (e.g. http://localhost:3000/webhooks).

listen runs a delivery agent inside this process, labelled
hookwire.listen=<random id>, and creates a subscription for --event-type
(default "*") whose target is --forward-to and whose agent_selector names that
label: only this listener delivers its webhooks, signed as usual, and plain
http:// and loopback targets are allowed (as under 'hookwire dev'). Each
delivery is printed as it completes: time, event type, webhook-id, the local
server's response status and the latency. On Ctrl-C (or SIGTERM) it finishes
the deliveries in flight, deletes the subscription it created and exits 0.

With --subscription ID it attaches to an existing subscription instead: it sets
that subscription's target URL and agent_selector to this listener, and on exit
restores the previous target and agent_selector (the subscription is not
deleted). Its signing secret is not shown again.

The connection settings (--addr, --api-key, --context, --tls, --ca-file) are
those of the other client commands; the agent connects to the same address.
The API key must be allowed to run an agent (the admin key or a key with
agent permission) and to manage the tenant's subscriptions.

Exit codes: see 'hookwire help exit-codes'.`,
		Example: `  hookwire listen --tenant acme --forward-to http://localhost:3000/webhooks
  hookwire listen --tenant acme --event-type 'order.*' --forward-to http://127.0.0.1:3000/hooks
  hookwire listen --tenant acme --subscription sub_01J... --forward-to http://localhost:3000/webhooks`,
		Args: c.argNames(),
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c.output = "table"
		if err := c.dial(cmd); err != nil {
			return c.fail(cmd, err)
		}
		defer func() {
			c.conn.Close()
			c.conn = nil
		}()
		err := c.listen(cmd, listenOptions{
			forwardTo: forwardTo, subID: subID, agentID: agentID, eventTypes: eventTypes,
			maxInFlight: maxInFlight, verbose: verbose,
		})
		if err != nil {
			return c.fail(cmd, err)
		}
		return nil
	}
	c.addTenantFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&forwardTo, "forward-to", "", "URL of the local server to deliver to, e.g. http://localhost:3000/webhooks (required)")
	f.StringSliceVar(&eventTypes, "event-type", []string{"*"}, "event type or pattern to forward (repeatable, or comma-separated)")
	f.StringVar(&subID, "subscription", "", "attach to this existing subscription instead of creating one (restored on exit, not deleted)")
	f.StringVar(&agentID, "id", "", "agent id of the listener (default: listen-<hostname>-<random>)")
	f.IntVar(&maxInFlight, "max-in-flight", 8, "deliveries forwarded at once")
	f.BoolVarP(&verbose, "verbose", "v", false, "log the agent's activity on stderr (default: only its warnings and errors)")
	c.connectionFlags(cmd, f)
	c.flagErrorsAreUsage(cmd)
	return cmd
}

type listenOptions struct {
	forwardTo, subID, agentID string
	eventTypes                []string
	maxInFlight               int
	verbose                   bool
}

// checkForwardURL accepts absolute http(s) URLs.
func checkForwardURL(s string) error {
	if s == "" {
		return usageErrorf("--forward-to is required, e.g. --forward-to http://localhost:3000/webhooks")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageErrorf("--forward-to %q: expected an http:// or https:// URL, e.g. http://localhost:3000/webhooks", s)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

func (c *cli) listen(cmd *cobra.Command, o listenOptions) error {
	tenant, err := c.tenant()
	if err != nil {
		return err
	}
	if err := checkForwardURL(o.forwardTo); err != nil {
		return err
	}
	if len(o.eventTypes) == 0 {
		return usageErrorf("--event-type is empty: pass at least one event type or pattern (default \"*\")")
	}
	if o.subID != "" && flagChanged(cmd, "event-type") {
		return usageErrorf("--event-type cannot be combined with --subscription: the attached subscription keeps its event types")
	}
	if o.maxInFlight <= 0 {
		return usageErrorf("--max-in-flight must be at least 1")
	}
	run := randomHex(6)
	if o.agentID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "host"
		}
		o.agentID = "listen-" + host + "-" + run
	}
	selector := listenLabel + "=" + run
	target := &hookwirev1.Target{
		Transport: "http",
		Config:    &structpb.Struct{Fields: map[string]*structpb.Value{"url": structpb.NewStringValue(o.forwardTo)}},
	}
	subs := hookwirev1.NewSubscriptionServiceClient(c.conn)

	// Attach to or create the subscription.
	var (
		sub     *hookwirev1.Subscription
		cleanup func(ctx context.Context) error
	)
	ctx, cancel := c.call(cmd)
	if o.subID != "" {
		cur, err := subs.GetSubscription(ctx, &hookwirev1.GetSubscriptionRequest{Tenant: tenant, Id: o.subID})
		if err != nil {
			cancel()
			return notFoundHint(err, "%s", subscriptionListHint(tenant))
		}
		if tr := cur.GetTarget().GetTransport(); tr != "http" {
			// A subscription keeps the transport it was created with.
			cancel()
			return usageErrorf("subscription %s delivers over transport %q; listen can only attach to an http subscription (a subscription's transport cannot be changed): run listen without --subscription to get a temporary one", o.subID, tr)
		}
		prevTarget, prevSelector := proto.Clone(cur.GetTarget()).(*hookwirev1.Target), cur.GetAgentSelector()
		t := proto.Clone(cur.GetTarget()).(*hookwirev1.Target)
		if t.Config == nil {
			t.Config = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		}
		t.Config.Fields["url"] = structpb.NewStringValue(o.forwardTo)
		cur.Target, cur.AgentSelector = t, selector
		mask := &fieldmaskpb.FieldMask{Paths: []string{"target", "agent_selector"}}
		if sub, err = subs.UpdateSubscription(ctx, &hookwirev1.UpdateSubscriptionRequest{Tenant: tenant, Subscription: cur, UpdateMask: mask}); err != nil {
			cancel()
			return notFoundHint(err, "%s", subscriptionListHint(tenant))
		}
		cleanup = func(ctx context.Context) error {
			restore := proto.Clone(sub).(*hookwirev1.Subscription)
			restore.Target, restore.AgentSelector = prevTarget, prevSelector
			_, err := subs.UpdateSubscription(ctx, &hookwirev1.UpdateSubscriptionRequest{Tenant: tenant, Subscription: restore, UpdateMask: mask})
			if err != nil {
				return fmt.Errorf("restore the target and agent_selector of subscription %s: %w", sub.GetId(), err)
			}
			return nil
		}
	} else {
		host, _ := os.Hostname()
		sub, err = subs.CreateSubscription(ctx, &hookwirev1.CreateSubscriptionRequest{Tenant: tenant, Subscription: &hookwirev1.Subscription{
			Description:   "hookwire listen on " + host + " (deleted when it exits)",
			EventTypes:    o.eventTypes,
			Target:        target,
			AgentSelector: selector,
			Metadata:      map[string]string{listenLabel: run},
		}})
		if err != nil {
			cancel()
			return err
		}
		cleanup = func(ctx context.Context) error {
			_, err := subs.DeleteSubscription(ctx, &hookwirev1.DeleteSubscriptionRequest{Tenant: tenant, Id: sub.GetId()})
			if err != nil {
				return fmt.Errorf("delete subscription %s: %w (delete it with 'hookwire subscriptions delete --tenant %s %s')", sub.GetId(), err, tenant, sub.GetId())
			}
			return nil
		}
	}
	cancel()

	out := cmd.OutOrStdout()
	secret := sub.GetSigningSecret()
	if secret == "" {
		secret = "unchanged"
	}
	fmt.Fprintf(out, "Ready! Forwarding %s events for tenant %s to %s (subscription %s, signing secret %s)\n",
		strings.Join(sub.GetEventTypes(), ", "), tenant, o.forwardTo, sub.GetId(), secret)

	// Run the agent until Ctrl-C; it drains the deliveries in flight.
	// The agent's warnings (e.g. a refused API key) always show.
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	af := agentFlags{
		server:      c.settings.addr.value,
		apiKey:      c.settings.apiKey.value,
		id:          o.agentID,
		labels:      []string{listenLabel + "=" + run},
		maxInFlight: o.maxInFlight,
		dev:         true, // deliver to loopback over plain http
		wrapTransports: func(src agent.TransportSource) agent.TransportSource {
			return &printingSource{TransportSource: src, w: out}
		},
	}
	if c.settings.tls {
		host, _, _ := net.SplitHostPort(c.settings.addr.value)
		af.tls = agent.TLSFiles{CAFile: c.settings.caFile, ServerName: host}
	}
	runCtx := cmd.Context()
	if runCtx == nil {
		runCtx = context.Background()
	}
	agentErr := runAgent(runCtx, log, af)

	// Clean up with a context of its own: the command's ended with Ctrl-C.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(runCtx), 30*time.Second)
	defer ccancel()
	if key := c.settings.apiKey.value; key != "" {
		cctx = metadata.AppendToOutgoingContext(cctx, "authorization", "Bearer "+key)
	}
	cleanErr := cleanup(cctx)
	if agentErr != nil && !errors.Is(agentErr, context.Canceled) {
		return errors.Join(fmt.Errorf("agent: %w", agentErr), cleanErr)
	}
	if cleanErr != nil {
		return cleanErr
	}
	if o.subID != "" {
		fmt.Fprintf(out, "Stopped; restored subscription %s.\n", sub.GetId())
	} else {
		fmt.Fprintf(out, "Stopped; deleted subscription %s.\n", sub.GetId())
	}
	return nil
}

// printingSource wraps the hosted transports so that every delivery is
// printed when it completes.
type printingSource struct {
	agent.TransportSource
	w  io.Writer
	mu sync.Mutex
}

func (p *printingSource) Transport(name string) (sdk.Transport, bool) {
	t, ok := p.TransportSource.Transport(name)
	if !ok {
		return nil, false
	}
	return printingTransport{Transport: t, src: p}, true
}

type printingTransport struct {
	sdk.Transport
	src *printingSource
}

func (t printingTransport) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	start := time.Now()
	res := t.Transport.Deliver(ctx, req)
	t.src.print(req, res, time.Since(start))
	return res
}

func (p *printingSource) print(req *transportv1.DeliveryRequest, res *transportv1.DeliveryResult, elapsed time.Duration) {
	id := req.GetHeaders()["webhook-id"]
	if id == "" {
		id = req.GetDeliveryId()
	}
	latency := elapsed
	if l := res.GetLatency(); l != nil && l.AsDuration() > 0 {
		latency = l.AsDuration()
	}
	result := "-"
	if res.GetStatusCode() != 0 {
		result = fmt.Sprint(res.GetStatusCode())
	}
	outcome := enumLabel(res.GetOutcome().String(), "OUTCOME_")
	line := fmt.Sprintf("%s  %s  %s  %s %s  %s",
		time.Now().Format("15:04:05"), req.GetEventType(), id, result, outcome, latency.Round(time.Millisecond))
	if e := res.GetError(); e != "" && res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		line += "  " + e
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, line)
}
