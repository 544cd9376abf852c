#!/usr/bin/env bash
# Make what compose.yaml mounts: certs/ (a CA and one certificate for the
# three servers, for the API's TLS and the cluster's mTLS) and
# secrets/master.key. The containers run as user 65532, so the key files
# are made readable to it (mode 0644): this is for a demo on your own
# machine only. Run from anywhere; needs openssl and hookwire (or Go).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
CERT_KEY_MODE=0644 ../certs/gen-certs.sh certs hookwire-1 hookwire-2 hookwire-3 localhost 127.0.0.1
mkdir -p secrets
if [ ! -f secrets/master.key ]; then
  if command -v hookwire >/dev/null; then
    hookwire keygen --out secrets/master.key
  else
    (cd ../.. && go run ./cmd/hookwire keygen --out "$here/secrets/master.key")
  fi
fi
chmod 0644 secrets/master.key
echo "ready: docker compose -f $here/compose.yaml up"
