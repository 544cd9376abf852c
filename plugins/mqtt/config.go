package mqtttransport

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hookwire/hookwire/plugins/internal/brokerkit"
)

// targetSchema documents the target configuration (JSON Schema).
const targetSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Hookwire mqtt target",
  "type": "object",
  "properties": {
    "url": {
      "type": "string",
      "writeOnly": true,
      "description": "MQTT 5 broker URL: mqtt://[user:password@]host:1883 (tcp:// also accepted) or mqtts://host:8883 (ssl://, tls://) for TLS. The broker must speak MQTT 5: the signature headers travel as MQTT 5 user properties. A secret (it may carry credentials): the control plane stores it encrypted and shows it as <redacted>; send <redacted> back to keep the stored URL.",
      "examples": ["mqtt://127.0.0.1:1883"]
    },
    "topic": {
      "type": "string",
      "minLength": 1,
      "description": "Topic to publish to. No wildcards (+ #), and not starting with $ (reserved for the broker).",
      "examples": ["webhooks/orders"]
    },
    "qos": {
      "type": "integer",
      "enum": [1, 2],
      "default": 1,
      "description": "1: at least once, succeeds on PUBACK. 2: exactly once between Hookwire and the broker, succeeds on PUBCOMP. QoS 0 is not offered: the broker never acknowledges it."
    },
    "retain": {
      "type": "boolean",
      "default": false,
      "description": "Ask the broker to retain the message as the topic's last value."
    }
  },
  "required": ["url", "topic"],
  "additionalProperties": false
}`

// target is a parsed, valid configuration.
type target struct {
	url    string
	topic  string
	qos    byte
	retain bool
}

// parseConfig checks a target configuration and returns every problem
// found, each a sentence the user can act on.
func parseConfig(cfg *structpb.Struct) (target, []string) {
	c := brokerkit.ReadConfig(cfg, Name, "url", "topic", "qos", "retain")
	t := target{
		url:    c.String("url", true, "mqtt://127.0.0.1:1883"),
		topic:  c.String("topic", true, "webhooks/orders"),
		retain: c.Bool("retain", false),
	}
	t.qos = 1
	if q, ok := c.Int("qos", 1, -1<<53, 1<<53); ok {
		switch q {
		case 1, 2:
			t.qos = byte(q)
		case 0:
			c.Problemf("qos 0 is not supported: the broker never acknowledges a QoS 0 message, so a delivery could not be confirmed; use 1 or 2")
		default:
			c.Problemf("qos must be 1 or 2, not %d", q)
		}
	}
	if c.IsString("url") {
		if p := checkURL(t.url); p != "" {
			c.Problemf("%s", p)
		}
	}
	if c.IsString("topic") {
		if p := checkTopic(t.topic); p != "" {
			c.Problemf("%s", p)
		}
	}
	return t, c.Problems()
}

// endpoint is where and how to connect, parsed from a valid url.
type endpoint struct {
	addr     string // host:port
	host     string
	tls      bool
	username string
	password string
	hasUser  bool
	hasPass  bool
}

func parseEndpoint(raw string) (endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, err
	}
	var e endpoint
	port := "1883"
	switch u.Scheme {
	case "mqtt", "tcp":
	case "mqtts", "ssl", "tls":
		e.tls, port = true, "8883"
	default:
		return endpoint{}, fmt.Errorf("must use mqtt:// or mqtts:// (also tcp://, ssl://, tls://), not %s://", u.Scheme)
	}
	e.host = u.Hostname()
	if e.host == "" {
		return endpoint{}, fmt.Errorf("has no host")
	}
	if p := u.Port(); p != "" {
		port = p
	}
	if u.Path != "" && u.Path != "/" {
		return endpoint{}, fmt.Errorf("has a path (%s); the topic goes in the topic field", u.Path)
	}
	e.addr = net.JoinHostPort(e.host, port)
	if u.User != nil {
		e.username, e.hasUser = u.User.Username(), true
		e.password, e.hasPass = u.User.Password()
	}
	return e, nil
}

func checkURL(raw string) string {
	if strings.TrimSpace(raw) == "" {
		return `url is empty; set it to the broker, e.g. "mqtt://127.0.0.1:1883"`
	}
	if !strings.Contains(raw, "://") {
		return fmt.Sprintf("url %s has no scheme; write it as mqtt://host:1883 or mqtts://host:8883", brokerkit.Redact("mqtt://"+raw, false)[len("mqtt://"):])
	}
	if p := brokerkit.URLSyntaxProblem(raw, "mqtt://user:password@host:1883"); p != "" {
		return p
	}
	shown := brokerkit.Redact(raw, false)
	if _, err := parseEndpoint(raw); err != nil {
		return fmt.Sprintf("url %s %v", shown, err)
	}
	return ""
}

// checkTopic refuses what an MQTT publish cannot use.
func checkTopic(topic string) string {
	switch {
	case topic == "":
		return `topic is empty; set it to the topic to publish to, e.g. "webhooks/orders"`
	case strings.ContainsAny(topic, "+#"):
		return fmt.Sprintf("topic %q contains a wildcard (+ or #); a publish needs a concrete topic", topic)
	case strings.HasPrefix(topic, "$"):
		return fmt.Sprintf("topic %q starts with $, which is reserved for the broker's own topics", topic)
	case strings.ContainsRune(topic, 0):
		return fmt.Sprintf("topic %q contains a NUL character", topic)
	case !utf8.ValidString(topic):
		return fmt.Sprintf("topic %q is not valid UTF-8", topic)
	case len(topic) > 65535:
		return fmt.Sprintf("topic is %d bytes long; MQTT allows at most 65535", len(topic))
	}
	return ""
}
