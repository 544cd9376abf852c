package main

import (
	"io"
	"strings"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
)

// subsRotateSecretCmd builds `subscriptions rotate-secret`.
func (c *cli) subsRotateSecretCmd() *cobra.Command {
	var overlap time.Duration
	var scheme string
	cmd := &cobra.Command{
		Use:   "rotate-secret ID",
		Short: "Give a subscription a new signing key; the old one keeps signing during an overlap",
		Long: `Rotate a subscription's signing key. Until the overlap ends (default 24h, at
most 168h) deliveries carry signatures from the old and the new key, so
receivers can switch to the new one without rejecting any delivery.

The new HMAC secret (whsec_...) is shown this once. For ed25519 the new
public key (whpk_...) is shown; it is public and 'get' shows it too.
--scheme migrates the subscription to the other scheme.`,
		Example: `  hookwire subscriptions rotate-secret --tenant acme sub_01J...
  hookwire subscriptions rotate-secret --tenant acme --overlap 1h sub_01J...
  hookwire subscriptions rotate-secret --tenant acme --scheme ed25519 sub_01J...`,
		Args:              c.argNames("ID"),
		ValidArgsFunction: c.completeSubscriptions,
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, args []string) error {
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		req := &hookwirev1.RotateSubscriptionSecretRequest{Tenant: tenant, Id: args[0]}
		if cmd.Flags().Changed("overlap") {
			req.Overlap = durationpb.New(overlap)
		}
		switch strings.ToLower(scheme) {
		case "":
		case "hmac", "hmac-sha256", "hmac_sha256":
			req.Scheme = hookwirev1.SignatureScheme_SIGNATURE_SCHEME_HMAC_SHA256
		case "ed25519":
			req.Scheme = hookwirev1.SignatureScheme_SIGNATURE_SCHEME_ED25519
		default:
			return usageErrorf("--scheme %q is unknown: use hmac or ed25519", scheme)
		}
		ctx, cancel := c.call(cmd)
		defer cancel()
		resp, err := hookwirev1.NewSubscriptionServiceClient(c.conn).RotateSubscriptionSecret(ctx, req)
		if err != nil {
			return notFoundHint(err, "%s", subscriptionListHint(tenant))
		}
		if resp.GetSubscription().GetSigningSecret() != "" {
			warnSecret(cmd, "new signing secret")
		}
		return c.emit(cmd, resp, func(w io.Writer) error {
			s := resp.GetSubscription()
			f := newFields(w)
			f.add("ID", s.GetId())
			f.add("Scheme", enumLabel(s.GetSignatureScheme().String(), "SIGNATURE_SCHEME_"))
			f.add("Signing secret", s.GetSigningSecret())
			f.add("Signing public key", s.GetSigningPublicKey())
			f.add("Old keys sign until", stamp(resp.GetPreviousKeysExpireTime()))
			return f.flush()
		})
	})
	cmd.Flags().DurationVar(&overlap, "overlap", 0, "how long the old key keeps signing next to the new one (default 24h, at most 168h; 0s retires it at once)")
	cmd.Flags().StringVar(&scheme, "scheme", "", "scheme of the new key: hmac or ed25519 (default: keep the current one)")
	_ = cmd.RegisterFlagCompletionFunc("scheme", fixedCompletion("hmac", "ed25519"))
	c.addTenantFlag(cmd)
	return cmd
}
