#!/usr/bin/env bash
# Regenerates everything under gen/ from proto/hookwire. Offline: buf compiles
# the vendored third-party protos and runs the Go plugins pinned in go.mod.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/buf lint
scripts/buf generate
