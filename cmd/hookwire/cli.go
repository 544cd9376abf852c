package main

// The API client half of the binary (cli*.go): commands that talk gRPC to a
// running control plane. This file holds what they share: the connection
// flags, the wrapper that turns every failure into "error: ..." plus a hint
// and a documented exit code, and the argument checks.

import (
	"context"
	"errors"
	"fmt"
	"github.com/hookwire/hookwire/internal/multiaddr"
	"io"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Exit codes of the client commands. Scripts may rely on them; they are
// listed in `hookwire help exit-codes`.
const (
	exitGeneric     = 1
	exitUsage       = 2
	exitNotFound    = 3
	exitAuth        = 4
	exitInvalid     = 5
	exitUnavailable = 6
	exitConflict    = 7
	exitInterrupted = 130
)

const exitCodesText = `Exit codes of the client commands (tenants, api-keys, subscriptions, events,
event-types, portal, deliveries, attempts, operations, agents, join-tokens,
audit, context, listen, tail):

  0    success
  1    any other error, including an operation that failed (operations watch,
       subscriptions recover)
  2    usage: unknown command or flag, missing or extra argument, bad flag value,
       no tenant given, unknown context
  3    not found: the tenant, subscription, event, delivery, operation, agent,
       API key, join token or context does not exist
  4    not authenticated (no, wrong, revoked or expired API key) or permission denied
  5    invalid request: the server rejected a field, or the payload/file is malformed
  6    unavailable: the control plane cannot be reached, or did not answer within
       --request-timeout
  7    conflict: it already exists, or the current state does not allow it
       (e.g. deleting a tenant that still has subscriptions)
  130  interrupted (Ctrl-C)
`

const defaultAddr = "127.0.0.1:7070"

// cli carries the flags shared by the client commands and the connection of
// the one command being run.
type cli struct {
	addr, apiKey, contextName string
	useTLS                    bool
	caFile                    string
	certFile, keyFile         string
	output                    string
	requestTimeout            time.Duration

	settings settings
	conn     *grpc.ClientConn
}

// commands builds the client command tree (see clientCommands).
func (c *cli) commands() []*cobra.Command {
	// Operator actions (cli_ops.go) join their nouns.
	subs, events, deliveries := c.subscriptionsCmd(), c.eventsCmd(), c.deliveriesCmd()
	subs.AddCommand(c.subsRecoverCmd())
	events.AddCommand(c.eventsResendCmd())
	deliveries.AddCommand(c.deliveriesRetryCmd(), c.deliveriesCancelCmd())
	cmds := []*cobra.Command{
		c.tenantsCmd(), c.apiKeysCmd(), subs, events,
		c.eventTypesCmd(), c.portalCmd(),
		deliveries, c.attemptsCmd(), c.operationsCmd(), c.agentsCmd(), c.joinTokensCmd(), c.operatorCmd(), c.contextCmd(),
		c.listenCmd(),
		newDocsCmd(),
		helpTopic("exit-codes", "Exit codes of the client commands, for scripts", exitCodesText),
		helpTopic("environment", "Connection settings: flags, environment variables and the config file", environmentText),
	}
	for _, cmd := range cmds {
		silence(cmd)
	}
	return cmds
}

// silence stops cobra printing errors for cmd and its children: the client
// commands print their own (see fail).
func silence(cmd *cobra.Command) {
	cmd.SilenceErrors = true
	cmd.SilenceUsage = true
	for _, sub := range cmd.Commands() {
		silence(sub)
	}
}

// helpTopic is a command without Run: cobra lists it under "Additional help
// topics" and shows it with `hookwire help NAME`.
func helpTopic(name, short, text string) *cobra.Command {
	return &cobra.Command{Use: name, Short: short, Long: text}
}

// noun builds a group command such as `tenants`. Running it alone prints its
// help; an unknown verb is a usage error. api says whether its commands talk
// to the control plane (and so take the connection flags).
func (c *cli) noun(use, short, long string, aliases []string, api bool, verbs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Long:    long + "\n\nExit codes: see 'hookwire help exit-codes'.",
		Aliases: aliases,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return c.fail(cmd, usageErrorf("%s", msg))
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(verbs...)
	pf := cmd.PersistentFlags()
	pf.StringVarP(&c.output, "output", "o", "table", "output format: table, json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", fixedCompletion("table", "json", "yaml"))
	if api {
		c.connectionFlags(cmd, pf)
	}
	c.flagErrorsAreUsage(cmd)
	return cmd
}

// flagErrorsAreUsage makes a bad flag of cmd a usage error (exit code and
// message like any other wrong invocation).
func (c *cli) flagErrorsAreUsage(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return c.fail(cmd, usageErrorf("%v", err))
	})
}

func (c *cli) connectionFlags(cmd *cobra.Command, pf *pflag.FlagSet) {
	pf.StringVar(&c.addr, "addr", "", "control plane gRPC address, host:port, or several servers of one cluster comma-separated, tried in order (env HOOKWIRE_ADDR; default "+defaultAddr+")")
	pf.StringVar(&c.apiKey, "api-key", "", "API key sent as a bearer token (env HOOKWIRE_API_KEY)")
	pf.StringVar(&c.contextName, "context", "", "use this context from the config file (env HOOKWIRE_CONTEXT; see 'hookwire help environment')")
	pf.BoolVar(&c.useTLS, "tls", false, "connect with TLS, trusting the system's CAs (or --ca-file)")
	pf.StringVar(&c.caFile, "ca-file", "", "PEM file of CA certificates to trust; implies --tls")
	pf.StringVar(&c.certFile, "cert-file", "", "PEM client certificate for servers that require mTLS, with --key-file (env HOOKWIRE_CERT_FILE); implies --tls")
	pf.StringVar(&c.keyFile, "key-file", "", "PEM private key of --cert-file (env HOOKWIRE_KEY_FILE)")
	pf.DurationVar(&c.requestTimeout, "request-timeout", 30*time.Second, "give up on each API call after this long (0: no limit)")
	_ = cmd.RegisterFlagCompletionFunc("context", completeContexts)
}

// run wraps a command body that needs no connection.
func (c *cli) run(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(c.output); err != nil {
			return c.fail(cmd, err)
		}
		if err := fn(cmd, args); err != nil {
			return c.fail(cmd, err)
		}
		return nil
	}
}

// runAPI wraps a command body that calls the control plane: it resolves the
// connection settings and dials (lazily) first, and closes afterwards.
func (c *cli) runAPI(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return c.run(func(cmd *cobra.Command, args []string) error {
		if err := c.dial(cmd); err != nil {
			return err
		}
		defer func() {
			c.conn.Close()
			c.conn = nil
		}()
		return fn(cmd, args)
	})
}

// runTenantCall is runAPI for a command on one tenant's resources: fn
// gets the --tenant value and a context for one API call (with the key
// and --timeout).
func (c *cli) runTenantCall(fn func(ctx context.Context, cmd *cobra.Command, tenant string, args []string) error) func(*cobra.Command, []string) error {
	return c.runAPI(func(cmd *cobra.Command, args []string) error {
		tenant, err := c.tenant()
		if err != nil {
			return err
		}
		ctx, cancel := c.call(cmd)
		defer cancel()
		return fn(ctx, cmd, tenant, args)
	})
}

// dial resolves the settings and creates the client connection. gRPC
// connects on the first call, so a server that is down shows up as an
// Unavailable error from that call.
func (c *cli) dial(cmd *cobra.Command) error {
	s, err := c.resolve(cmd)
	if err != nil {
		return err
	}
	c.settings = s
	creds := insecure.NewCredentials()
	if s.tls {
		cfg, err := s.clientTLS()
		if err != nil {
			return err
		}
		creds = credentials.NewTLS(cfg)
	}
	target, multi, err := multiaddr.Dial(s.addr.value)
	if err != nil {
		return usageErrorf("address %q (from %s): %v", s.addr.value, s.addr.source, err)
	}
	conn, err := grpc.NewClient(target, append(multi,
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("hookwire-cli/"+version),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))...)
	if err != nil {
		return usageErrorf("address %q (from %s): %v", s.addr.value, s.addr.source, err)
	}
	c.conn = conn
	return nil
}

// normalizeAddr accepts host, host:port and URL-ish forms such as
// "grpc://host:port" ("https://" also turns TLS on, see resolve).
func normalizeAddr(addr string) string {
	if list := multiaddr.Split(addr); len(list) > 1 {
		for i, a := range list {
			list[i] = normalizeAddr(a)
		}
		return strings.Join(list, ",")
	}
	for _, scheme := range []string{"grpc://", "http://", "https://", "dns:///"} {
		addr = strings.TrimPrefix(addr, scheme)
	}
	addr = strings.TrimSuffix(addr, "/")
	if _, _, err := net.SplitHostPort(addr); err != nil && !strings.Contains(addr, "]") && strings.Count(addr, ":") == 0 {
		addr = net.JoinHostPort(addr, "7070")
	}
	return addr
}

// call returns the context for one API call: the command's context (ended
// by Ctrl-C), the bearer key and --request-timeout.
func (c *cli) call(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if key := c.settings.apiKey.value; key != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	}
	if c.requestTimeout > 0 {
		return context.WithTimeout(ctx, c.requestTimeout)
	}
	return context.WithCancel(ctx)
}

// readAll reads r to its end, or returns early when the command's context
// ends (Ctrl-C while waiting on a pipe that never closes).
func readAll(cmd *cobra.Command, r io.Reader) ([]byte, error) {
	ctx := cmd.Context()
	if ctx == nil {
		return io.ReadAll(r)
	}
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := io.ReadAll(r)
		done <- result{data, err}
	}()
	select {
	case res := <-done:
		return res.data, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// --- errors ---

// usageError is a mistake on the command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return usageError{msg: fmt.Sprintf(format, args...)}
}

// inputError is malformed content found before sending: a payload that is
// not JSON, a bad subscription file (exit 5, like the server's
// InvalidArgument).
type inputError struct{ msg string }

func (e inputError) Error() string { return e.msg }

func inputErrorf(format string, args ...any) error {
	return inputError{msg: fmt.Sprintf(format, args...)}
}

// localNotFound is something missing on this machine, e.g. a context (exit 3).
type localNotFound struct{ msg string }

func (e localNotFound) Error() string { return e.msg }

// hinted attaches what to do next to an API error: for one status code,
// or always (a note).
type hinted struct {
	err    error
	code   codes.Code
	always bool
	hint   string
}

func (h hinted) Error() string { return h.err.Error() }
func (h hinted) Unwrap() error { return h.err }

// hintFor wraps an API error with a hint shown if its code is code.
func hintFor(err error, code codes.Code, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return hinted{err: err, code: code, hint: fmt.Sprintf(format, args...)}
}

// notFoundHint wraps an API error with a hint shown if it is NotFound.
func notFoundHint(err error, format string, args ...any) error {
	return hintFor(err, codes.NotFound, format, args...)
}

// withNote wraps an error with a line shown whatever its code.
func withNote(err error, format string, args ...any) error {
	return hinted{err: err, always: true, hint: fmt.Sprintf(format, args...)}
}

// hintsOf returns the hints in err's chain that match, outermost first.
func hintsOf(err error, match func(hinted) bool) []string {
	var out []string
	for ; err != nil; err = errors.Unwrap(err) {
		if h, ok := err.(hinted); ok && match(h) {
			out = append(out, h.hint)
		}
	}
	return out
}

// fail prints err as "error: ..." with hints on stderr and returns the
// exitError main turns into the exit code. An error already reported passes
// through unchanged.
func (c *cli) fail(cmd *cobra.Command, err error) error {
	var done exitError
	if errors.As(err, &done) {
		return err
	}
	code, msg, hints := c.explain(cmd, err)
	w := cmd.ErrOrStderr()
	fmt.Fprintf(w, "error: %s\n", msg)
	for _, h := range hints {
		fmt.Fprintf(w, "hint: %s\n", h)
	}
	return exitError{code: code, err: errors.New(msg)}
}

// explain maps an error to its exit code, message and hints.
func (c *cli) explain(cmd *cobra.Command, err error) (int, string, []string) {
	var (
		ue usageError
		ie inputError
		ln localNotFound
	)
	switch {
	case errors.As(err, &ue):
		return exitUsage, ue.msg, []string{fmt.Sprintf("run '%s --help' for usage", cmd.CommandPath())}
	case errors.As(err, &ie):
		return exitInvalid, ie.msg, nil
	case errors.As(err, &ln):
		return exitNotFound, ln.msg, []string{"see 'hookwire context list'"}
	}
	notes := hintsOf(err, func(h hinted) bool { return h.always })
	if ctx := cmd.Context(); ctx != nil && ctx.Err() != nil {
		return exitInterrupted, "interrupted", notes
	}
	var se interface {
		error
		GRPCStatus() *status.Status
	}
	if !errors.As(err, &se) {
		return exitGeneric, err.Error(), notes
	}
	st := se.GRPCStatus()
	msg := st.Message()
	if lines := fieldViolations(st); len(lines) > 0 {
		msg = "invalid request:\n  " + strings.Join(lines, "\n  ")
	}
	if st.Code() == codes.Unavailable {
		switch {
		case strings.HasPrefix(msg, "connection error: desc = "):
			msg = fmt.Sprintf("cannot connect to %s: %s", c.settings.addr.value, dialReason(msg))
		case strings.HasPrefix(msg, "name resolver error"):
			msg = fmt.Sprintf("cannot connect to %s: the host name does not resolve (%s)", c.settings.addr.value, msg)
		}
	}
	// Keep the context a command wrapped around the status error, e.g.
	// "request 2 of 3 (lines 1001-2000): ".
	if full, inner := err.Error(), se.Error(); full != inner && strings.HasSuffix(full, inner) {
		msg = strings.TrimSuffix(full, inner) + msg
	}
	code, hints := c.classify(st)
	// Hints the command attached: specific ones replace the generic
	// NotFound hint; notes (e.g. what a batch published) always show.
	if specific := hintsOf(err, func(h hinted) bool { return !h.always && h.code == st.Code() }); len(specific) > 0 {
		if st.Code() == codes.NotFound && !strings.HasPrefix(st.Message(), "tenant ") {
			hints = specific
		} else if st.Code() != codes.NotFound {
			hints = append(hints, specific...)
		}
	}
	return code, msg, append(hints, notes...)
}

// classify maps a gRPC status to an exit code and the generic hints.
func (c *cli) classify(st *status.Status) (int, []string) {
	addr, key := c.settings.addr, c.settings.apiKey
	switch st.Code() {
	case codes.NotFound:
		if strings.HasPrefix(st.Message(), "tenant ") {
			return exitNotFound, []string{"check the tenant id; list tenants with 'hookwire tenants list' (admin key)"}
		}
		return exitNotFound, []string{"check the tenant and the id"}
	case codes.Unauthenticated:
		if key.value == "" {
			return exitAuth, []string{"no API key was sent: set HOOKWIRE_API_KEY, pass --api-key, or save one in a context with 'hookwire context set NAME --api-key KEY'"}
		}
		return exitAuth, []string{fmt.Sprintf("the API key from %s (%s) was refused; check it, or create a new one with 'hookwire api-keys create'", key.source, maskKey(key.value))}
	case codes.PermissionDenied:
		return exitAuth, []string{fmt.Sprintf("the API key from %s (%s) may not do this; tenants commands need the admin key, changes need a tenant-admin key", key.source, maskKey(key.value))}
	case codes.InvalidArgument, codes.OutOfRange:
		if tooLarge(st) {
			return exitInvalid, []string{"the server limits payload size with its --max-payload-bytes flag"}
		}
		return exitInvalid, nil
	case codes.AlreadyExists, codes.FailedPrecondition, codes.Aborted:
		return exitConflict, nil
	case codes.Unavailable:
		switch m := st.Message(); {
		case c.settings.tls && (strings.Contains(m, "certificate required") || strings.Contains(m, "bad certificate")) && c.settings.certFile.value == "":
			return exitUnavailable, []string{fmt.Sprintf("%s requires a client certificate (mTLS): pass --cert-file and --key-file, set HOOKWIRE_CERT_FILE and HOOKWIRE_KEY_FILE, or save cert_file/key_file in the context", addr.value)}
		case c.settings.tls && (strings.Contains(m, "certificate required") || strings.Contains(m, "bad certificate") || strings.Contains(m, "unknown certificate authority")) && c.settings.certFile.value != "":
			return exitUnavailable, []string{fmt.Sprintf("%s refused the client certificate %s (from %s): is it signed by the CA the server trusts (its --tls-client-ca)?", addr.value, c.settings.certFile.value, c.settings.certFile.source)}
		case c.settings.tls && (strings.Contains(m, "broken pipe") || strings.Contains(m, "connection reset")):
			// Under TLS 1.3 the server checks the client certificate after
			// the client's handshake is done; its alert can be lost when the
			// client is already writing, leaving only a closed connection.
			if c.settings.certFile.value == "" {
				return exitUnavailable, []string{fmt.Sprintf("%s closed the connection after the TLS handshake; if it requires a client certificate (mTLS): pass --cert-file and --key-file, set HOOKWIRE_CERT_FILE and HOOKWIRE_KEY_FILE, or save cert_file/key_file in the context", addr.value)}
			}
			return exitUnavailable, []string{fmt.Sprintf("%s closed the connection after the TLS handshake; it may have refused the client certificate %s (from %s): is it signed by the CA the server trusts (its --tls-client-ca)?", addr.value, c.settings.certFile.value, c.settings.certFile.source)}
		case strings.Contains(m, "x509:") || strings.Contains(m, "tls:") && c.settings.tls:
			return exitUnavailable, []string{fmt.Sprintf("the TLS handshake with %s failed: check the server's certificate and --ca-file, or drop --tls if the server is plaintext", addr.value)}
		case !c.settings.tls && (strings.Contains(m, "server preface") || strings.Contains(m, "EOF")):
			return exitUnavailable, []string{fmt.Sprintf("%s closed the connection; if it serves TLS, pass --tls (and --ca-file)", addr.value)}
		}
		return exitUnavailable, []string{fmt.Sprintf("is the control plane running at %s (from %s)? Start one with 'hookwire dev', or point --addr / HOOKWIRE_ADDR at it", addr.value, addr.source)}
	case codes.DeadlineExceeded:
		return exitUnavailable, []string{fmt.Sprintf("no answer from %s within --request-timeout %s", addr.value, c.requestTimeout)}
	case codes.Canceled:
		return exitInterrupted, nil
	case codes.Unimplemented:
		return exitGeneric, []string{fmt.Sprintf("the server at %s does not support this call; is it older than this hookwire binary?", addr.value)}
	}
	return exitGeneric, nil
}

// dialReason shortens gRPC's `connection error: desc = "transport: Error
// while dialing: dial tcp 127.0.0.1:1: connect: connection refused"` to its
// last part ("connection refused").
func dialReason(msg string) string {
	desc := strings.Trim(strings.TrimPrefix(msg, "connection error: desc = "), `"`)
	if i := strings.LastIndex(desc, ": "); i >= 0 {
		return desc[i+2:]
	}
	return desc
}

func fieldViolations(st *status.Status) []string {
	var out []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField()+": "+v.GetDescription())
			}
		}
	}
	return out
}

func tooLarge(st *status.Status) bool {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == "PAYLOAD_TOO_LARGE" {
			return true
		}
	}
	return false
}

// --- arguments ---

// argNames checks the positional arguments against their names.
func (c *cli) argNames(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return c.fail(cmd, usageErrorf("missing %s", strings.Join(names[len(args):], " and ")))
		case len(args) > len(names):
			return c.fail(cmd, usageErrorf("unexpected argument %q", args[len(names)]))
		}
		for i, a := range args {
			if strings.TrimSpace(a) == "" {
				return c.fail(cmd, usageErrorf("%s is empty", names[i]))
			}
		}
		return nil
	}
}

// checkOutput validates --output.
func checkOutput(o string) error {
	switch o {
	case "table", "json", "yaml":
		return nil
	}
	return usageErrorf("--output %q: use table, json or yaml", o)
}

// parseKeyValues parses repeated k=v flags.
func parseKeyValues(flag string, list []string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--%s %q: expected key=value", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

func fixedCompletion(values ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return values, cobra.ShellCompDirectiveNoFileComp
	}
}

// protoErrPrefix is protojson's "proto: (line 1:2): " (with a space or a
// no-break space); the position refers to JSON the user never wrote.
var protoErrPrefix = regexp.MustCompile(`^proto:[\s\x{00a0}]*(\(line \d+:\d+\):[\s\x{00a0}]*)?`)

// protoErrText is a protojson error without its prefix.
func protoErrText(err error) string {
	return protoErrPrefix.ReplaceAllString(err.Error(), "")
}

// batchEventIndex finds "event N:" in a PublishEvents error, to translate it
// to an input line.
var batchEventIndex = regexp.MustCompile(`^event (\d+): `)
