// Command hookwire-transport-file is an example Hookwire transport plugin,
// built as its own binary with nothing but the public SDK (plugins/sdk):
// it appends every delivery to a file, as one JSON line.
//
// It is small but real: deliveries to the same file are serialised and
// each is fsynced before SUCCESS is reported, a failed write is rolled
// back so no half line remains, and subscriptions can only name files
// inside the directory the operator chose.
//
// # Running it
//
// Build it into the agent's plugin directory under the name the agent looks
// for (hookwire-transport-<name>), and tell it where files go:
//
//	go build -o /etc/hookwire/plugins/hookwire-transport-file ./examples/transport-file
//	HOOKWIRE_FILE_TRANSPORT_DIR=/var/lib/hookwire/files \
//	    hookwire agent --plugin-dir /etc/hookwire/plugins \
//	    --plugin-sha256 file=$(sha256sum /etc/hookwire/plugins/hookwire-transport-file | cut -d' ' -f1)
//
// The plugin inherits the agent's environment. HOOKWIRE_FILE_TRANSPORT_DIR
// is created (mode 0700) if it does not exist; without it every delivery is
// REJECTED with a message saying to set it.
//
// # Target configuration
//
//	{"file": "orders.jsonl"}
//
// file is a relative path inside HOOKWIRE_FILE_TRANSPORT_DIR (it may name a
// subdirectory, which is created); absolute paths, ".." and symbolic links
// that lead outside the directory are refused.
//
// # Output
//
// Each line is a JSON object:
//
//	{"delivery_id":"dlv_...","event_type":"order.created","content_type":"application/json",
//	 "headers":{"webhook-id":"dlv_...","webhook-signature":"v1,...","webhook-timestamp":"..."},
//	 "body":"{\"id\":42}","written_at":"2026-01-02T15:04:05.123456789Z"}
//
// body holds the payload when it is valid UTF-8 (JSON string escaping
// round-trips it exactly); any other payload is in body_base64 instead. The
// headers carry the control plane's Standard Webhooks signature over the
// exact body, so a reader can verify every line.
package main

import (
	"os"

	"github.com/hookwire/hookwire/plugins/sdk"
)

func main() {
	sdk.Serve(newTransport(os.Getenv(envDir)))
}
