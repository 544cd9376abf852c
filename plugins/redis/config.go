package redistransport

import (
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hookwire/hookwire/plugins/internal/brokerkit"
)

// targetSchema documents the target configuration (JSON Schema).
const targetSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Hookwire redis target",
  "type": "object",
  "properties": {
    "url": {
      "type": "string",
      "writeOnly": true,
      "description": "Redis URL: redis://[user:password@]host:6379/db, rediss:// for TLS, or unix:///path/redis.sock. Standalone Redis only (not Cluster). A secret (it may carry credentials): the control plane stores it encrypted and shows it as <redacted>; send <redacted> back to keep the stored URL.",
      "examples": ["redis://127.0.0.1:6379/0"]
    },
    "stream": {
      "type": "string",
      "minLength": 1,
      "description": "Key of the stream to append to with XADD. Created on the first delivery if it does not exist.",
      "examples": ["webhooks:orders"]
    },
    "maxlen": {
      "type": "integer",
      "minimum": 1,
      "description": "Optional cap on the stream's length, applied on every XADD as MAXLEN ~ maxlen (approximate trimming: Redis may keep slightly more entries, which is much cheaper)."
    }
  },
  "required": ["url", "stream"],
  "additionalProperties": false
}`

// maxMaxLen keeps maxlen exactly representable as a JSON number.
const maxMaxLen = 1 << 53

// target is a parsed, valid configuration.
type target struct {
	url    string
	stream string
	maxLen int64
}

// parseConfig checks a target configuration and returns every problem
// found, each a sentence the user can act on.
func parseConfig(cfg *structpb.Struct) (target, []string) {
	c := brokerkit.ReadConfig(cfg, Name, "url", "stream", "maxlen")
	t := target{
		url:    c.String("url", true, "redis://127.0.0.1:6379/0"),
		stream: c.String("stream", true, "webhooks:orders"),
	}
	t.maxLen, _ = c.Int("maxlen", 0, 1, maxMaxLen)
	if c.IsString("url") {
		if p := checkURL(t.url); p != "" {
			c.Problemf("%s", p)
		}
	}
	if c.IsString("stream") && t.stream == "" {
		c.Problemf(`stream is empty; set it to the key of the stream to append to, e.g. "webhooks:orders"`)
	}
	return t, c.Problems()
}

func checkURL(raw string) string {
	if strings.TrimSpace(raw) == "" {
		return `url is empty; set it to the Redis server, e.g. "redis://127.0.0.1:6379/0"`
	}
	if p := brokerkit.URLSyntaxProblem(raw, "redis://user:password@host:6379/0"); p != "" {
		return p
	}
	shown := brokerkit.Redact(raw, false)
	if !strings.HasPrefix(raw, "redis://") && !strings.HasPrefix(raw, "rediss://") && !strings.HasPrefix(raw, "unix://") {
		return fmt.Sprintf("url %s must start with redis://, rediss:// or unix://", shown)
	}
	if _, err := redis.ParseURL(raw); err != nil {
		msg := strings.ReplaceAll(err.Error(), raw, shown)
		return fmt.Sprintf("url %s is not a valid Redis URL (%s); write it as redis://user:password@host:6379/0", shown, msg)
	}
	return ""
}
