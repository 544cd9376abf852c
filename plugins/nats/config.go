package natstransport

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hookwire/hookwire/plugins/internal/brokerkit"
)

// targetSchema documents the target configuration (JSON Schema).
const targetSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Hookwire nats target",
  "type": "object",
  "properties": {
    "url": {
      "type": "string",
      "writeOnly": true,
      "description": "NATS server URL (nats://, tls://, ws:// or wss://), or several separated by commas for a cluster. Credentials go in the URL: nats://user:password@host:4222 or nats://token@host:4222. A secret (it may carry credentials): the control plane stores it encrypted and shows it as <redacted>; send <redacted> back to keep the stored URL.",
      "examples": ["nats://127.0.0.1:4222"]
    },
    "subject": {
      "type": "string",
      "description": "Subject to publish to. No wildcards (* or >), no whitespace, no empty tokens.",
      "examples": ["webhooks.orders"]
    },
    "jetstream": {
      "type": "boolean",
      "default": false,
      "description": "Publish through JetStream and succeed only once a stream has stored the message (a stream must capture the subject). When false, a core NATS publish succeeds once the server has received it (confirmed with a round trip), whether or not anyone is subscribed."
    }
  },
  "required": ["url", "subject"],
  "additionalProperties": false
}`

// target is a parsed, valid configuration.
type target struct {
	url       string
	subject   string
	jetstream bool
}

// parseConfig checks a target configuration and returns every problem
// found, each a sentence the user can act on.
func parseConfig(cfg *structpb.Struct) (target, []string) {
	c := brokerkit.ReadConfig(cfg, Name, "url", "subject", "jetstream")
	t := target{
		url:       c.String("url", true, "nats://127.0.0.1:4222"),
		subject:   c.String("subject", true, "webhooks.orders"),
		jetstream: c.Bool("jetstream", false),
	}
	if c.IsString("url") {
		if p := checkURL(t.url); p != "" {
			c.Problemf("%s", p)
		}
	}
	if c.IsString("subject") {
		if p := checkSubject(t.subject); p != "" {
			c.Problemf("%s", p)
		}
	}
	return t, c.Problems()
}

func checkURL(raw string) string {
	if strings.TrimSpace(raw) == "" {
		return `url is empty; set it to the NATS server, e.g. "nats://127.0.0.1:4222"`
	}
	for _, part := range strings.Split(raw, ",") {
		part = strings.TrimSpace(part)
		shown := brokerkit.Redact(part, true)
		if part == "" {
			return fmt.Sprintf("url %q has an empty entry in its comma-separated list", brokerkit.Redact(raw, true))
		}
		u, err := url.Parse(part)
		if err != nil {
			return fmt.Sprintf("url %s is not a valid URL; write it as nats://host:4222", shown)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		case "":
			return fmt.Sprintf("url %s has no scheme; write it as nats://host:4222 (or tls://, ws://, wss://)", shown)
		default:
			return fmt.Sprintf("url %s must use nats://, tls://, ws:// or wss://, not %s://", shown, u.Scheme)
		}
		if u.Hostname() == "" {
			return fmt.Sprintf("url %s has no host", shown)
		}
	}
	return ""
}

// checkSubject refuses what a publish cannot use.
func checkSubject(s string) string {
	if s == "" {
		return `subject is empty; set it to the subject to publish to, e.g. "webhooks.orders"`
	}
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return fmt.Sprintf("subject %q contains whitespace, which NATS subjects cannot hold", s)
	}
	for _, tok := range strings.Split(s, ".") {
		switch tok {
		case "":
			return fmt.Sprintf("subject %q has an empty token (a leading, trailing or doubled dot)", s)
		case "*", ">":
			return fmt.Sprintf("subject %q contains the wildcard %q; a publish needs a concrete subject", s, tok)
		}
	}
	return ""
}
