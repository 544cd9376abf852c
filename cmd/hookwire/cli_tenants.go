package main

// tenants and api-keys commands, and the paging shared by list commands.

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// maxPageSize is the API's largest page.
const maxPageSize = 1000

// paging is --limit, --all and --page-token for list commands.
type paging struct {
	limit int
	all   bool
	token string
}

func (p *paging) register(fs *pflag.FlagSet, noun string) {
	fs.IntVar(&p.limit, "limit", 50, "show at most this many "+noun)
	fs.BoolVar(&p.all, "all", false, "fetch every page (ignores --limit)")
	fs.StringVar(&p.token, "page-token", "", "continue from a next_page_token printed by an earlier list")
}

func (p *paging) check() error {
	if !p.all && p.limit < 1 {
		return usageErrorf("--limit %d: must be at least 1 (or pass --all)", p.limit)
	}
	return nil
}

// collect fetches pages until the limit, or all of them with --all. It
// returns the token for the next page, if more may exist.
func collect[T any](p *paging, fetch func(size int32, token string) ([]T, string, error)) ([]T, string, error) {
	var out []T
	token := p.token
	for {
		size := maxPageSize
		if !p.all {
			size = min(p.limit-len(out), maxPageSize)
		}
		items, next, err := fetch(int32(size), token)
		if err != nil {
			return out, "", err
		}
		out = append(out, items...)
		if next == "" || (!p.all && len(out) >= p.limit) {
			return out, next, nil
		}
		if next == token {
			return out, "", fmt.Errorf("the server returned the same page token twice (%q); stopping", next)
		}
		token = next
	}
}

// moreHint tells people a list was cut at --limit.
func moreHint(cmd *cobra.Command, next string) {
	if next != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "There may be more: pass --all, a larger --limit, or --page-token %s\n", next)
	}
}

func (c *cli) tenantsCmd() *cobra.Command {
	return c.noun("tenants", "Create, show, list and delete tenants (admin key)",
		`Tenants are isolated customer spaces; every subscription, event and delivery
belongs to one. Creating, listing and deleting tenants needs the admin key; a
tenant key may get its own tenant.`,
		[]string{"tenant"}, true,
		c.tenantsCreateCmd(), c.tenantsGetCmd(), c.tenantsListCmd(), c.tenantsDeleteCmd())
}

func tenantView(t *hookwirev1.Tenant) func(io.Writer) error {
	return func(w io.Writer) error {
		f := newFields(w)
		f.add("ID", t.GetId())
		f.add("Display name", t.GetDisplayName())
		f.add("Created", stamp(t.GetCreateTime()))
		return f.flush()
	}
}

func (c *cli) tenantsCreateCmd() *cobra.Command {
	var displayName string
	cmd := &cobra.Command{
		Use:   "create ID",
		Short: "Create a tenant",
		Long: `Create a tenant with the id you choose: 1 to 63 lower-case letters, digits and
dashes, starting and ending with a letter or digit. Exits with 7 if it exists.`,
		Example: `  hookwire tenants create acme --display-name "Acme Corp"
  hookwire tenants create acme || [ $? -eq 7 ]     # create unless it exists`,
		Args: c.argNames("ID"),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, args []string) error {
		ctx, cancel := c.call(cmd)
		defer cancel()
		t, err := hookwirev1.NewTenantServiceClient(c.conn).CreateTenant(ctx, &hookwirev1.CreateTenantRequest{Id: args[0], DisplayName: displayName})
		if err != nil {
			return err
		}
		return c.emit(cmd, t, tenantView(t))
	})
	cmd.Flags().StringVar(&displayName, "display-name", "", "free text for people")
	return cmd
}

func (c *cli) tenantsGetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:               "get ID",
		Short:             "Show a tenant",
		Example:           "  hookwire tenants get acme\n  hookwire tenants get acme -o json",
		Args:              c.argNames("ID"),
		ValidArgsFunction: c.completeTenantArg,
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, args []string) error {
		ctx, cancel := c.call(cmd)
		defer cancel()
		t, err := hookwirev1.NewTenantServiceClient(c.conn).GetTenant(ctx, &hookwirev1.GetTenantRequest{Id: args[0]})
		if err != nil {
			return err
		}
		return c.emit(cmd, t, tenantView(t))
	})
	return cmd
}

func (c *cli) tenantsListCmd() *cobra.Command {
	var p paging
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List tenants in id order",
		Example: "  hookwire tenants list\n  hookwire tenants list --all -o json | jq -r '.tenants[].id'",
		Args:    c.argNames(),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, _ []string) error {
		if err := p.check(); err != nil {
			return err
		}
		client := hookwirev1.NewTenantServiceClient(c.conn)
		list, next, err := collect(&p, func(size int32, token string) ([]*hookwirev1.Tenant, string, error) {
			ctx, cancel := c.call(cmd)
			defer cancel()
			resp, err := client.ListTenants(ctx, &hookwirev1.ListTenantsRequest{PageSize: size, PageToken: token})
			return resp.GetTenants(), resp.GetNextPageToken(), err
		})
		if err != nil {
			return err
		}
		return emitList(c, cmd, "tenants", list, next, func(w io.Writer) error {
			if len(list) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No tenants. Create one with: hookwire tenants create ID")
				return nil
			}
			t := newTable(w, "ID", "DISPLAY NAME", "CREATED")
			for _, x := range list {
				t.row(x.GetId(), dash(x.GetDisplayName()), ago(x.GetCreateTime()))
			}
			if err := t.flush(); err != nil {
				return err
			}
			moreHint(cmd, next)
			return nil
		})
	})
	p.register(cmd.Flags(), "tenants")
	return cmd
}

func (c *cli) tenantsDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a tenant that has no subscriptions left",
		Long: `Delete a tenant. The server refuses (exit 7) while the tenant still has
subscriptions; delete them first.`,
		Example:           "  hookwire tenants delete acme",
		Aliases:           []string{"rm"},
		Args:              c.argNames("ID"),
		ValidArgsFunction: c.completeTenantArg,
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, args []string) error {
		ctx, cancel := c.call(cmd)
		defer cancel()
		if _, err := hookwirev1.NewTenantServiceClient(c.conn).DeleteTenant(ctx, &hookwirev1.DeleteTenantRequest{Id: args[0]}); err != nil {
			err = hintFor(err, codes.FailedPrecondition, "list them with 'hookwire subscriptions list --tenant %s'", args[0])
			return notFoundHint(err, "list tenants with 'hookwire tenants list'")
		}
		return c.done(cmd, args[0], "deleted", "Deleted tenant %q.", args[0])
	})
	return cmd
}

// done reports a call that returns nothing: a sentence for people,
// {"id": ..., "<state>": true} for scripts.
func (c *cli) done(cmd *cobra.Command, id, state, format string, args ...any) error {
	if c.output == "table" {
		_, err := fmt.Fprintf(cmd.OutOrStdout(), format+"\n", args...)
		return err
	}
	return writeValue(cmd.OutOrStdout(), c.output, map[string]any{"id": id, state: true})
}

// --- API keys ---

func (c *cli) apiKeysCmd() *cobra.Command {
	return c.noun("api-keys", "Create, list and revoke a tenant's API keys",
		`API keys authenticate callers ("Authorization: Bearer <key>"). Each belongs to
one tenant and has a scope: tenant-admin (everything within the tenant),
publish (publishing events only) or read-only. The key itself is shown once,
when it is created.`,
		[]string{"api-key", "apikeys", "keys"}, true,
		c.apiKeysCreateCmd(), c.apiKeysListCmd(), c.apiKeysRevokeCmd())
}

var scopes = map[string]hookwirev1.ApiKeyScope{
	"tenant-admin": hookwirev1.ApiKeyScope_API_KEY_SCOPE_TENANT_ADMIN,
	"publish":      hookwirev1.ApiKeyScope_API_KEY_SCOPE_PUBLISH,
	"read-only":    hookwirev1.ApiKeyScope_API_KEY_SCOPE_READ_ONLY,
}

func parseScope(s string) (hookwirev1.ApiKeyScope, error) {
	key := strings.ToLower(strings.TrimPrefix(strings.ToUpper(s), "API_KEY_SCOPE_"))
	key = strings.ReplaceAll(key, "_", "-")
	if sc, ok := scopes[key]; ok {
		return sc, nil
	}
	if key == "admin" {
		return 0, usageErrorf("--scope admin: only the bootstrap key has it; use tenant-admin")
	}
	return 0, usageErrorf("--scope %q: use tenant-admin, publish or read-only", s)
}

func keyState(k *hookwirev1.ApiKey) string {
	switch {
	case k.GetRevoked():
		return "revoked"
	case k.GetExpireTime() != nil && k.GetExpireTime().AsTime().Before(time.Now()):
		return "expired"
	}
	return "active"
}

func apiKeyView(k *hookwirev1.ApiKey) func(io.Writer) error {
	return func(w io.Writer) error {
		f := newFields(w)
		f.add("ID", k.GetId())
		f.add("Tenant", k.GetTenant())
		f.add("Name", k.GetName())
		f.add("Scope", enumLabel(k.GetScope().String(), "API_KEY_SCOPE_"))
		f.add("State", keyState(k))
		f.add("Created", stamp(k.GetCreateTime()))
		if k.GetExpireTime() != nil {
			f.add("Expires", stamp(k.GetExpireTime()))
		} else {
			f.add("Expires", "never")
		}
		f.add("Key", k.GetKey())
		return f.flush()
	}
}

func (c *cli) apiKeysCreateCmd() *cobra.Command {
	var name, scope, expiresAt string
	var expiresIn time.Duration
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create an API key for a tenant (the key is shown once)",
		Long: `Create an API key scoped to one tenant. The key value is printed once, in this
output only; store it right away.`,
		Example: `  hookwire api-keys create --tenant acme --name ci --scope publish
  hookwire api-keys create --tenant acme --scope read-only --expires-in 720h
  KEY=$(hookwire api-keys create --tenant acme -o json | jq -r .key)`,
		Args: c.argNames(),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, _ []string) error {
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		req := &hookwirev1.CreateApiKeyRequest{Tenant: tenant, Name: name}
		if scope != "" {
			if req.Scope, err = parseScope(scope); err != nil {
				return err
			}
		}
		switch {
		case expiresIn != 0 && expiresAt != "":
			return usageErrorf("pass --expires-in or --expires-at, not both")
		case expiresIn < 0:
			return usageErrorf("--expires-in %s: must be positive", expiresIn)
		case expiresIn > 0:
			req.ExpireTime = timestamppb.New(time.Now().Add(expiresIn))
		case expiresAt != "":
			t, err := time.Parse(time.RFC3339, expiresAt)
			if err != nil {
				return usageErrorf("--expires-at %q: use RFC 3339, e.g. 2027-01-31T00:00:00Z", expiresAt)
			}
			req.ExpireTime = timestamppb.New(t)
		}
		ctx, cancel := c.call(cmd)
		defer cancel()
		k, err := hookwirev1.NewApiKeyServiceClient(c.conn).CreateApiKey(ctx, req)
		if err != nil {
			return err
		}
		warnSecret(cmd, "API key")
		return c.emit(cmd, k, apiKeyView(k))
	})
	c.addTenantFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "name for people, e.g. what uses the key")
	f.StringVar(&scope, "scope", "tenant-admin", "tenant-admin, publish or read-only")
	f.DurationVar(&expiresIn, "expires-in", 0, "refuse the key after this long, e.g. 720h (default: never)")
	f.StringVar(&expiresAt, "expires-at", "", "refuse the key after this RFC 3339 time")
	_ = cmd.RegisterFlagCompletionFunc("scope", fixedCompletion("tenant-admin", "publish", "read-only"))
	return cmd
}

func (c *cli) apiKeysListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List a tenant's API keys (never their values)",
		Example: "  hookwire api-keys list --tenant acme",
		Args:    c.argNames(),
	}
	cmd.RunE = c.runTenantCall(func(ctx context.Context, cmd *cobra.Command, tenant string, _ []string) error {
		resp, err := hookwirev1.NewApiKeyServiceClient(c.conn).ListApiKeys(ctx, &hookwirev1.ListApiKeysRequest{Tenant: tenant})
		if err != nil {
			return err
		}
		list := resp.GetApiKeys()
		return emitList(c, cmd, "api_keys", list, "", func(w io.Writer) error {
			if len(list) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "No API keys for tenant %q. Create one with: hookwire api-keys create --tenant %s\n", tenant, tenant)
				return nil
			}
			t := newTable(w, "ID", "NAME", "SCOPE", "STATE", "CREATED", "EXPIRES")
			for _, k := range list {
				exp := "never"
				if k.GetExpireTime() != nil {
					exp = ago(k.GetExpireTime())
				}
				t.row(k.GetId(), dash(k.GetName()), enumLabel(k.GetScope().String(), "API_KEY_SCOPE_"), keyState(k), ago(k.GetCreateTime()), exp)
			}
			return t.flush()
		})
	})
	c.addTenantFlag(cmd)
	return cmd
}

func (c *cli) apiKeysRevokeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "revoke KEY_ID",
		Short:   "Revoke an API key at once",
		Long:    "Revoke a key by its id (the hwk_... prefix shown by 'api-keys list'). Calls with it fail from now on.",
		Example: "  hookwire api-keys revoke --tenant acme hwk_0123456789abcdef",
		Args:    c.argNames("KEY_ID"),
	}
	cmd.RunE = c.runTenantCall(func(ctx context.Context, cmd *cobra.Command, tenant string, args []string) error {
		if _, err := hookwirev1.NewApiKeyServiceClient(c.conn).RevokeApiKey(ctx, &hookwirev1.RevokeApiKeyRequest{Tenant: tenant, Id: args[0]}); err != nil {
			return notFoundHint(err, "list the tenant's keys with 'hookwire api-keys list --tenant %s'", tenant)
		}
		return c.done(cmd, args[0], "revoked", "Revoked API key %s.", args[0])
	})
	c.addTenantFlag(cmd)
	return cmd
}
