#!/usr/bin/env bash
# Make a CA and one certificate for Hookwire servers, with openssl:
#
#   packaging/certs/gen-certs.sh DIR NAME...
#
# DIR gets ca.crt/ca.key (made once, reused on later runs) and tls.crt/
# tls.key: an ECDSA P-256 certificate valid for every NAME (DNS names,
# wildcards such as *.hw-hookwire-server.hooks.svc.cluster.local, or IP
# addresses), for both server and client authentication, as cluster mTLS
# needs (docs/CLUSTERING.md). The same files serve the API's TLS; agents
# verify it with ca.crt. Keys are 0600 unless CERT_KEY_MODE says otherwise.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: packaging/certs/gen-certs.sh DIR NAME...   (DNS names or IPs the certificate is valid for)" >&2
  exit 2
fi
dir=$1; shift
mkdir -p "$dir"
umask 077
if [ ! -f "$dir/ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=Hookwire CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
san=""
for n in "$@"; do
  if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san+="${san:+,}IP:$n"; else san+="${san:+,}DNS:$n"; fi
done
ext=$(mktemp)
trap 'rm -f "$ext" "$dir/tls.csr"' EXIT
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$san" > "$ext"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
  -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
  -days 825 -extfile "$ext" -out "$dir/tls.crt" 2>/dev/null
chmod 0644 "$dir/ca.crt" "$dir/tls.crt"
chmod "${CERT_KEY_MODE:-0600}" "$dir/tls.key"
echo "wrote $dir/tls.crt (valid for $san), $dir/tls.key and $dir/ca.crt"
