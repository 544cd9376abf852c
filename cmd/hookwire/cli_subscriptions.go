package main

// subscriptions commands.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
)

func (c *cli) subscriptionsCmd() *cobra.Command {
	return c.noun("subscriptions", "Manage where a tenant's events are delivered",
		`A subscription routes a tenant's events of some types to one target through a
transport (http by default). Its signing secret is shown once, on create and
rotate-secret.`,
		[]string{"subscription", "subs", "sub"}, true,
		c.subsCreateCmd(), c.subsGetCmd(), c.subsListCmd(), c.subsUpdateCmd(), c.subsDeleteCmd(),
		c.subsStateCmd("pause"), c.subsStateCmd("resume"), c.subsRotateSecretCmd())
}

// subscriptionListHint is the NotFound hint of subscription commands.
func subscriptionListHint(tenant string) string {
	return fmt.Sprintf("check --tenant and the id; list them with 'hookwire subscriptions list --tenant %s'", tenant)
}

func targetSummary(t *hookwirev1.Target) string {
	if t == nil {
		return "-"
	}
	if u, ok := t.GetConfig().GetFields()["url"]; ok && t.GetTransport() == "http" {
		return u.GetStringValue()
	}
	cfg, _ := protojson.Marshal(t.GetConfig())
	return t.GetTransport() + " " + truncate(string(cfg), 60)
}

func subscriptionView(s *hookwirev1.Subscription) func(io.Writer) error {
	return func(w io.Writer) error {
		f := newFields(w)
		f.add("ID", s.GetId())
		f.add("Tenant", s.GetTenant())
		st := enumLabel(s.GetStatus().String(), "SUBSCRIPTION_STATUS_")
		if r := s.GetDisabledReason(); r != "" {
			st += " (" + r + ")"
		}
		f.add("Status", st)
		f.add("Description", s.GetDescription())
		f.add("Event types", strings.Join(s.GetEventTypes(), ", "))
		f.add("Transport", s.GetTarget().GetTransport())
		if t := s.GetTarget(); t.GetTransport() == "http" && t.GetConfig().GetFields()["url"] != nil {
			f.add("URL", t.GetConfig().GetFields()["url"].GetStringValue())
			if len(t.GetConfig().GetFields()) > 1 {
				cfg, _ := protojson.Marshal(t.GetConfig())
				f.add("Config", string(cfg))
			}
		} else if t != nil {
			cfg, _ := protojson.Marshal(t.GetConfig())
			f.add("Config", string(cfg))
		}
		f.add("Timeout", duration(s.GetTarget().GetTimeout()))
		f.add("Headers", joinMap(s.GetTarget().GetHeaders()))
		f.add("Metadata", joinMap(s.GetMetadata()))
		f.add("Created", stamp(s.GetCreateTime()))
		f.add("Updated", stamp(s.GetUpdateTime()))
		f.add("Signing secret", s.GetSigningSecret())
		f.add("Signing public key", s.GetSigningPublicKey())
		return f.flush()
	}
}

// targetFlags are the flags that describe a target.
type targetFlags struct {
	transport, url, config string
	timeout                time.Duration
	headers, removeHeaders []string
}

// targetFlagNames are the flags that change a target.
var targetFlagNames = []string{"transport", "url", "config", "timeout", "header", "remove-header"}

func (t *targetFlags) register(cmd *cobra.Command, transportDefault string) {
	f := cmd.Flags()
	f.StringVar(&t.transport, "transport", transportDefault, "transport plugin that delivers, e.g. http")
	f.StringVar(&t.url, "url", "", "target URL (http transport): shortcut for --config '{\"url\": ...}'")
	f.StringVar(&t.config, "config", "", `transport configuration as a JSON object, e.g. '{"url":"https://example.com/hook"}'`)
	f.DurationVar(&t.timeout, "timeout", 0, "upper bound for one attempt, at most 5m (default 30s)")
	f.StringArrayVar(&t.headers, "header", nil, "NAME=VALUE header sent with every attempt (repeatable); values are encrypted at rest and never shown again, so credentials belong here")
	_ = cmd.RegisterFlagCompletionFunc("transport", fixedCompletion("http"))
}

func parseConfig(s string) (*structpb.Struct, error) {
	cfg := &structpb.Struct{}
	if err := protojson.Unmarshal([]byte(s), cfg); err != nil {
		return nil, usageErrorf("--config: want a JSON object, e.g. '{\"url\":\"https://example.com/hook\"}': %v", err)
	}
	return cfg, nil
}

func (c *cli) subsCreateCmd() *cobra.Command {
	var (
		file, description string
		eventTypes        []string
		metadata          []string
		tf                targetFlags
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a subscription (its signing secret is shown once)",
		Long: `Create a subscription from flags, or from a YAML or JSON file (-f, "-" for
stdin) in the shape of the REST body:

  description: Orders to the billing service
  event_types: ["order.*"]
  target:
    transport: http
    config: {url: "https://billing.example.com/hooks"}
    timeout: 10s
  metadata: {team: billing}

Event types are exact names ("order.created") or patterns where "*" matches
one or more dot-separated segments ("order.*", "*"). The output includes the
signing secret (whsec_...), which is never shown again.`,
		Example: `  hookwire subscriptions create --tenant acme --event-type 'order.*' --url https://example.com/hooks
  hookwire subscriptions create --tenant acme --event-type order.created --event-type order.paid \
      --url https://example.com/hooks --timeout 10s --description billing --metadata team=billing
  hookwire subscriptions create --tenant acme -f subscription.yaml
  SECRET=$(hookwire subscriptions create --tenant acme -f sub.json -o json | jq -r .signing_secret)`,
		Args: c.argNames(),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, _ []string) error {
		var sub *hookwirev1.Subscription
		if file != "" {
			for _, name := range []string{"event-type", "url", "config", "timeout", "description", "metadata", "transport", "header"} {
				if flagChanged(cmd, name) {
					return usageErrorf("--%s cannot be combined with -f: put it in the file", name)
				}
			}
			var err error
			if sub, err = readSubscriptionFile(cmd, file); err != nil {
				return err
			}
		} else {
			if len(eventTypes) == 0 {
				return usageErrorf("pass at least one --event-type (e.g. --event-type 'order.*'), or -f FILE")
			}
			md, err := parseKeyValues("metadata", metadata)
			if err != nil {
				return err
			}
			target, err := tf.build(cmd, nil)
			if err != nil {
				return err
			}
			sub = &hookwirev1.Subscription{Description: description, EventTypes: eventTypes, Metadata: md, Target: target}
		}
		tenant := c.settings.tenant.value
		if tenant == "" {
			tenant = sub.GetTenant() // a file exported with 'subscriptions get -o yaml'
		}
		if tenant == "" {
			return errNoTenant()
		}
		ctx, cancel := c.call(cmd)
		defer cancel()
		out, err := hookwirev1.NewSubscriptionServiceClient(c.conn).CreateSubscription(ctx, &hookwirev1.CreateSubscriptionRequest{Tenant: tenant, Subscription: sub})
		if err != nil {
			return err
		}
		warnSecret(cmd, "signing secret")
		return c.emit(cmd, out, subscriptionView(out))
	})
	c.addTenantFlag(cmd)
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", `YAML or JSON file with the subscription ("-" for stdin)`)
	f.StringSliceVar(&eventTypes, "event-type", nil, "event type or pattern to deliver (repeatable, or comma-separated)")
	f.StringVar(&description, "description", "", "free text for people")
	f.StringArrayVar(&metadata, "metadata", nil, "key=value to attach (repeatable)")
	tf.register(cmd, "http")
	return cmd
}

// build makes a target from the flags, starting from base (nil for a new
// subscription). It returns nil, nil when no target flag was passed and
// base is not nil.
func (tf *targetFlags) build(cmd *cobra.Command, base *hookwirev1.Target) (*hookwirev1.Target, error) {
	changed := false
	for _, name := range targetFlagNames {
		changed = changed || flagChanged(cmd, name)
	}
	if base != nil && !changed {
		return nil, nil
	}
	t := &hookwirev1.Target{Transport: tf.transport}
	if base != nil {
		// The server shows header values as <redacted>; sending that back
		// keeps each stored value.
		t = &hookwirev1.Target{Transport: base.GetTransport(), Config: base.GetConfig(), Timeout: base.GetTimeout(), Headers: maps.Clone(base.GetHeaders())}
		if flagChanged(cmd, "transport") && tf.transport != base.GetTransport() {
			return nil, usageErrorf("--transport %q: a subscription keeps the transport it was created with (%q); create a new subscription for %q", tf.transport, base.GetTransport(), tf.transport)
		}
	}
	if flagChanged(cmd, "config") {
		cfg, err := parseConfig(tf.config)
		if err != nil {
			return nil, err
		}
		t.Config = cfg
	}
	if flagChanged(cmd, "url") {
		if t.Transport != "http" {
			return nil, usageErrorf("--url is for the http transport; for %q pass --config", t.Transport)
		}
		if tf.url == "" {
			return nil, usageErrorf("--url is empty")
		}
		cfg := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for k, v := range t.GetConfig().GetFields() {
			cfg.Fields[k] = v
		}
		cfg.Fields["url"] = structpb.NewStringValue(tf.url)
		t.Config = cfg
	}
	if t.Config == nil {
		if t.Transport == "http" {
			return nil, usageErrorf("pass --url (or --config) for the http transport")
		}
		return nil, usageErrorf("pass --config for the %q transport", t.Transport)
	}
	if flagChanged(cmd, "timeout") {
		if tf.timeout <= 0 {
			return nil, usageErrorf("--timeout %s: must be positive (at most 5m)", tf.timeout)
		}
		t.Timeout = durationpb.New(tf.timeout)
	}
	for _, name := range tf.removeHeaders {
		key, ok := headerKey(t.GetHeaders(), name)
		if !ok {
			return nil, usageErrorf("--remove-header %q: the subscription has no such header", name)
		}
		delete(t.Headers, key)
	}
	set, err := parseKeyValues("header", tf.headers)
	if err != nil {
		return nil, err
	}
	for name, value := range set {
		if t.Headers == nil {
			t.Headers = map[string]string{}
		}
		if key, ok := headerKey(t.Headers, name); ok {
			delete(t.Headers, key) // header names are case-insensitive
		}
		t.Headers[name] = value
	}
	return t, nil
}

// headerKey finds name among the keys of headers, ignoring case.
func headerKey(headers map[string]string, name string) (string, bool) {
	for k := range headers {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	return "", false
}

// readSubscriptionFile reads a subscription from YAML or JSON (JSON is
// YAML), in the REST body's shape; unknown fields are an error.
func readSubscriptionFile(cmd *cobra.Command, path string) (*hookwirev1.Subscription, error) {
	var data []byte
	var err error
	name := path
	if path == "-" {
		name = "stdin"
		data, err = readAll(cmd, cmd.InOrStdin())
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read subscription: %w", err)
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, inputErrorf("%s: not YAML or JSON: %v", name, err)
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, inputErrorf("%s: want a subscription object with event_types and target, got %s", name, describeYAML(doc))
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return nil, inputErrorf("%s: %v", name, err)
	}
	sub := &hookwirev1.Subscription{}
	if err := protojson.Unmarshal(js, sub); err != nil {
		return nil, inputErrorf("%s: invalid subscription: %s", name, protoErrText(err))
	}
	return sub, nil
}

func describeYAML(v any) string {
	switch v.(type) {
	case nil:
		return "an empty document"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}

func (c *cli) subsGetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:               "get ID",
		Short:             "Show a subscription (without its secret)",
		Example:           "  hookwire subscriptions get --tenant acme sub_01J...\n  hookwire subscriptions get --tenant acme sub_01J... -o yaml > sub.yaml",
		Args:              c.argNames("ID"),
		ValidArgsFunction: c.completeSubscriptions,
	}
	cmd.RunE = c.runTenantCall(func(ctx context.Context, cmd *cobra.Command, tenant string, args []string) error {
		s, err := hookwirev1.NewSubscriptionServiceClient(c.conn).GetSubscription(ctx, &hookwirev1.GetSubscriptionRequest{Tenant: tenant, Id: args[0]})
		if err != nil {
			return notFoundHint(err, "%s", subscriptionListHint(tenant))
		}
		return c.emit(cmd, s, subscriptionView(s))
	})
	c.addTenantFlag(cmd)
	return cmd
}

func (c *cli) subsListCmd() *cobra.Command {
	var p paging
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List a tenant's subscriptions in creation order",
		Example: "  hookwire subscriptions list --tenant acme\n  hookwire subscriptions list --tenant acme --all -o json",
		Args:    c.argNames(),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, _ []string) error {
		if err := p.check(); err != nil {
			return err
		}
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		client := hookwirev1.NewSubscriptionServiceClient(c.conn)
		list, next, err := collect(&p, func(size int32, token string) ([]*hookwirev1.Subscription, string, error) {
			ctx, cancel := c.call(cmd)
			defer cancel()
			resp, err := client.ListSubscriptions(ctx, &hookwirev1.ListSubscriptionsRequest{Tenant: tenant, PageSize: size, PageToken: token})
			return resp.GetSubscriptions(), resp.GetNextPageToken(), err
		})
		if err != nil {
			return err
		}
		return emitList(c, cmd, "subscriptions", list, next, func(w io.Writer) error {
			if len(list) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "No subscriptions for tenant %q. Create one with: hookwire subscriptions create --tenant %s --event-type 'TYPE' --url URL\n", tenant, tenant)
				return nil
			}
			t := newTable(w, "ID", "STATUS", "EVENT TYPES", "TARGET", "DESCRIPTION", "CREATED")
			for _, s := range list {
				t.row(s.GetId(), enumLabel(s.GetStatus().String(), "SUBSCRIPTION_STATUS_"), strings.Join(s.GetEventTypes(), ","),
					targetSummary(s.GetTarget()), dash(truncate(s.GetDescription(), 40)), ago(s.GetCreateTime()))
			}
			if err := t.flush(); err != nil {
				return err
			}
			moreHint(cmd, next)
			return nil
		})
	})
	c.addTenantFlag(cmd)
	p.register(cmd.Flags(), "subscriptions")
	return cmd
}

func (c *cli) subsUpdateCmd() *cobra.Command {
	var (
		description      string
		eventTypes       []string
		metadata, remove []string
		tf               targetFlags
	)
	cmd := &cobra.Command{
		Use:   "update ID",
		Short: "Change a subscription's description, event types, target or metadata",
		Long: `Change only what the flags name; everything else stays as it is. Each flag maps
to one update_mask path:

  --description                          description
  --event-type (replaces the list)       event_types
  --url, --config, --timeout              target (the rest of the target is kept;
                                         the transport cannot change)
  --metadata k=v, --remove-metadata k    metadata (other keys are kept)

Use 'subscriptions pause' and 'resume' to stop and restart delivery.`,
		Example: `  hookwire subscriptions update --tenant acme sub_01J... --url https://new.example.com/hooks
  hookwire subscriptions update --tenant acme sub_01J... --event-type 'order.*' --event-type 'refund.*'
  hookwire subscriptions update --tenant acme sub_01J... --metadata owner=ops --remove-metadata team`,
		Args:              c.argNames("ID"),
		ValidArgsFunction: c.completeSubscriptions,
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, args []string) error {
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		set, err := parseKeyValues("metadata", metadata)
		if err != nil {
			return err
		}
		if flagChanged(cmd, "event-type") && len(eventTypes) == 0 {
			return usageErrorf("--event-type is empty: a subscription needs at least one event type")
		}
		anyFlag := false
		for _, name := range append([]string{"description", "event-type", "metadata", "remove-metadata"}, targetFlagNames...) {
			anyFlag = anyFlag || flagChanged(cmd, name)
		}
		if !anyFlag {
			return usageErrorf("nothing to update: pass --description, --event-type, --url, --config, --transport, --timeout, --header, --remove-header, --metadata or --remove-metadata")
		}
		client := hookwirev1.NewSubscriptionServiceClient(c.conn)
		ctx, cancel := c.call(cmd)
		defer cancel()
		cur, err := client.GetSubscription(ctx, &hookwirev1.GetSubscriptionRequest{Tenant: tenant, Id: args[0]})
		if err != nil {
			return notFoundHint(err, "%s", subscriptionListHint(tenant))
		}
		var paths []string
		if flagChanged(cmd, "description") {
			cur.Description = description
			paths = append(paths, "description")
		}
		if flagChanged(cmd, "event-type") {
			cur.EventTypes = eventTypes
			paths = append(paths, "event_types")
		}
		target, err := tf.build(cmd, cur.GetTarget())
		if err != nil {
			return err
		}
		if target != nil {
			cur.Target = target
			paths = append(paths, "target")
		}
		if len(set) > 0 || len(remove) > 0 {
			md := map[string]string{}
			for k, v := range cur.GetMetadata() {
				md[k] = v
			}
			for _, k := range remove {
				if _, ok := md[k]; !ok {
					return usageErrorf("--remove-metadata %q: the subscription has no such key", k)
				}
				delete(md, k)
			}
			for k, v := range set {
				md[k] = v
			}
			cur.Metadata = md
			paths = append(paths, "metadata")
		}
		out, err := client.UpdateSubscription(ctx, &hookwirev1.UpdateSubscriptionRequest{
			Tenant: tenant, Subscription: cur, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
		})
		if err != nil {
			return notFoundHint(err, "%s", subscriptionListHint(tenant))
		}
		return c.emit(cmd, out, subscriptionView(out))
	})
	c.addTenantFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&description, "description", "", "new description")
	f.StringSliceVar(&eventTypes, "event-type", nil, "new event types: replaces the list (repeatable, or comma-separated)")
	f.StringArrayVar(&metadata, "metadata", nil, "set key=value, keeping other keys (repeatable)")
	f.StringSliceVar(&remove, "remove-metadata", nil, "remove a metadata key (repeatable)")
	tf.register(cmd, "http")
	f.StringArrayVar(&tf.removeHeaders, "remove-header", nil, "remove a --header by name (repeatable); other headers keep their values")
	return cmd
}

func (c *cli) subsDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:               "delete ID",
		Aliases:           []string{"rm"},
		Short:             "Delete a subscription; its pending deliveries are cancelled",
		Example:           "  hookwire subscriptions delete --tenant acme sub_01J...",
		Args:              c.argNames("ID"),
		ValidArgsFunction: c.completeSubscriptions,
	}
	cmd.RunE = c.runTenantCall(func(ctx context.Context, cmd *cobra.Command, tenant string, args []string) error {
		if _, err := hookwirev1.NewSubscriptionServiceClient(c.conn).DeleteSubscription(ctx, &hookwirev1.DeleteSubscriptionRequest{Tenant: tenant, Id: args[0]}); err != nil {
			return notFoundHint(err, "%s", subscriptionListHint(tenant))
		}
		return c.done(cmd, args[0], "deleted", "Deleted subscription %s; its pending deliveries are cancelled.", args[0])
	})
	c.addTenantFlag(cmd)
	return cmd
}

// subsStateCmd builds pause or resume.
func (c *cli) subsStateCmd(verb string) *cobra.Command {
	short, long := "Stop delivery to a subscription; new events still queue up",
		"Pause a subscription: nothing is delivered until it is resumed, but new events still create deliveries, which wait."
	if verb == "resume" {
		short, long = "Restart delivery to a paused or disabled subscription",
			"Resume a paused subscription, or one Hookwire disabled (e.g. after 410 Gone); waiting deliveries go out."
	}
	cmd := &cobra.Command{
		Use:               verb + " ID",
		Short:             short,
		Long:              long,
		Example:           fmt.Sprintf("  hookwire subscriptions %s --tenant acme sub_01J...", verb),
		Args:              c.argNames("ID"),
		ValidArgsFunction: c.completeSubscriptions,
	}
	cmd.RunE = c.runTenantCall(func(ctx context.Context, cmd *cobra.Command, tenant string, args []string) error {
		client := hookwirev1.NewSubscriptionServiceClient(c.conn)
		var (
			s   *hookwirev1.Subscription
			err error
		)
		if verb == "pause" {
			s, err = client.PauseSubscription(ctx, &hookwirev1.PauseSubscriptionRequest{Tenant: tenant, Id: args[0]})
		} else {
			s, err = client.ResumeSubscription(ctx, &hookwirev1.ResumeSubscriptionRequest{Tenant: tenant, Id: args[0]})
		}
		if err != nil {
			return notFoundHint(err, "%s", subscriptionListHint(tenant))
		}
		return c.emit(cmd, s, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "Subscription %s is now %s.\n", s.GetId(), enumLabel(s.GetStatus().String(), "SUBSCRIPTION_STATUS_"))
			return err
		})
	})
	c.addTenantFlag(cmd)
	return cmd
}
