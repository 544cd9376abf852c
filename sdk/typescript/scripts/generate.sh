#!/usr/bin/env bash
# Regenerates src/gen/ from the public protos (proto/hookwire/v1) with
# protoc-gen-es, pinned in package.json (run `npm ci` first), and the
# repository's pinned buf (scripts/buf). CI checks that running it changes
# nothing under src/gen.
set -euo pipefail
sdk=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$sdk/../.." && pwd)
if [ ! -x "$sdk/node_modules/.bin/protoc-gen-es" ]; then
  echo "protoc-gen-es is missing: run npm ci in $sdk first" >&2
  exit 1
fi
cd "$root"
scripts/buf generate --template sdk/typescript/buf.gen.yaml
