package amqptransport

import (
	"fmt"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hookwire/hookwire/plugins/internal/brokerkit"
)

// targetSchema documents the target configuration (JSON Schema).
const targetSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Hookwire amqp target",
  "type": "object",
  "properties": {
    "url": {
      "type": "string",
      "writeOnly": true,
      "description": "AMQP 0-9-1 broker URL with credentials and vhost: amqp://user:password@host:5672/vhost or amqps:// for TLS. Percent-encode special characters in the password. A secret (it may carry credentials): the control plane stores it encrypted and shows it as <redacted>; send <redacted> back to keep the stored URL.",
      "examples": ["amqp://guest:guest@127.0.0.1:5672/"]
    },
    "exchange": {
      "type": "string",
      "default": "",
      "maxLength": 255,
      "description": "Exchange to publish to. It must exist: Hookwire never declares it. Empty (the default) means the default exchange, where routing_key names the queue."
    },
    "routing_key": {
      "type": "string",
      "default": "",
      "maxLength": 255,
      "description": "Routing key. Required with the default exchange (it is the queue name)."
    },
    "mandatory": {
      "type": "boolean",
      "default": true,
      "description": "When true (the default), a message no queue receives is returned by the broker and the attempt is REJECTED. When false, RabbitMQ drops unroutable messages silently and the attempt still succeeds."
    }
  },
  "required": ["url"],
  "additionalProperties": false
}`

// target is a parsed, valid configuration.
type target struct {
	url        string
	exchange   string
	routingKey string
	mandatory  bool
}

// parseConfig checks a target configuration and returns every problem
// found, each a sentence the user can act on.
func parseConfig(cfg *structpb.Struct) (target, []string) {
	c := brokerkit.ReadConfig(cfg, Name, "url", "exchange", "routing_key", "mandatory")
	t := target{
		url:        c.String("url", true, "amqp://guest:guest@127.0.0.1:5672/"),
		exchange:   c.String("exchange", false, ""),
		routingKey: c.String("routing_key", false, ""),
		mandatory:  c.Bool("mandatory", true),
	}
	if c.IsString("url") {
		if p := checkURL(t.url); p != "" {
			c.Problemf("%s", p)
		}
	}
	if c.IsString("exchange") {
		if p := checkName("exchange", t.exchange); p != "" {
			c.Problemf("%s", p)
		}
	}
	if c.IsString("routing_key") {
		if p := checkName("routing_key", t.routingKey); p != "" {
			c.Problemf("%s", p)
		}
	}
	typesOK := (!c.Has("exchange") || c.IsString("exchange")) && (!c.Has("routing_key") || c.IsString("routing_key"))
	if typesOK && t.exchange == "" && t.routingKey == "" {
		c.Problemf("routing_key is required when exchange is empty (the default exchange delivers to the queue the routing key names): set routing_key to the queue name, or set exchange")
	}
	return t, c.Problems()
}

func checkURL(raw string) string {
	if strings.TrimSpace(raw) == "" {
		return `url is empty; set it to the broker, e.g. "amqp://guest:guest@127.0.0.1:5672/"`
	}
	shown := brokerkit.Redact(raw, false)
	if !strings.HasPrefix(raw, "amqp://") && !strings.HasPrefix(raw, "amqps://") {
		return fmt.Sprintf("url %s must start with amqp:// or amqps://", shown)
	}
	if p := brokerkit.URLSyntaxProblem(raw, "amqp://user:password@host:5672/vhost"); p != "" {
		return p
	}
	if _, err := amqp.ParseURI(raw); err != nil {
		return fmt.Sprintf("url %s is not a valid AMQP URL (%v); write it as amqp://user:password@host:5672/vhost", shown, redactErr(err, raw))
	}
	return ""
}

// redactErr keeps a parse error from echoing the URL with its password.
func redactErr(err error, raw string) string {
	return strings.ReplaceAll(err.Error(), raw, brokerkit.Redact(raw, false))
}

// checkName applies AMQP's short-string limits to exchange names and
// routing keys.
func checkName(field, v string) string {
	if len(v) > 255 {
		return fmt.Sprintf("%s is %d bytes long; AMQP allows at most 255", field, len(v))
	}
	for _, r := range v {
		if r < ' ' || r == 0x7f {
			return fmt.Sprintf("%s %q contains a control character", field, v)
		}
	}
	return ""
}
