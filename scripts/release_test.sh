#!/usr/bin/env bash
# Check that release builds are reproducible: build the committed HEAD twice,
# from two clones at different paths, at different times, with different
# umasks and time zones, and require identical SHA256SUMS (and so identical
# archives and SBOM).
#
#   scripts/release_test.sh                      all four targets
#   RELEASE_TARGETS=linux/amd64 scripts/release_test.sh   a subset (CI)
#   RELEASE_TEST_FRESH_CACHE=1 ...               second build with an empty
#                                                Go build cache (compiles
#                                                everything again; slow)
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-v0.0.0-reprotest}
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

git clone -q --no-hardlinks . "$tmp/one/hookwire"
git clone -q --no-hardlinks . "$tmp/second-clone/src"
# The clones have no uncommitted changes: this tests the commit, not the work tree.

start=$(date +%s)
(cd "$tmp/one/hookwire" && RELEASE_OUT="$tmp/out1" scripts/release.sh "$version") > "$tmp/log1" 2>&1 ||
  { cat "$tmp/log1"; exit 1; }
t1=$(( $(date +%s) - start ))

start=$(date +%s)
(
  cd "$tmp/second-clone/src"
  umask 077
  export TZ=Pacific/Kiritimati LANG=C.UTF-8
  if [ "${RELEASE_TEST_FRESH_CACHE:-}" = 1 ]; then export GOCACHE="$tmp/gocache"; fi
  RELEASE_OUT="$tmp/out2" scripts/release.sh "$version"
) > "$tmp/log2" 2>&1 || { cat "$tmp/log2"; exit 1; }
t2=$(( $(date +%s) - start ))

echo "first build ${t1}s, second build ${t2}s (targets: ${RELEASE_TARGETS:-all four})"
if ! diff -u "$tmp/out1/SHA256SUMS" "$tmp/out2/SHA256SUMS"; then
  echo "FAIL: two release builds of the same commit differ"
  exit 1
fi
n=$(wc -l < "$tmp/out1/SHA256SUMS")
[ "$n" -ge 2 ] || { echo "FAIL: SHA256SUMS lists $n files"; exit 1; }
(cd "$tmp/out1" && sha256sum -c --quiet SHA256SUMS)
# The archive's binary says which commit it is.
commit=$(git -C "$tmp/one/hookwire" rev-parse HEAD)
host="$(go env GOOS)/$(go env GOARCH)"
case " ${RELEASE_TARGETS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64} " in
  *" $host "*)
    bin="$tmp/out1/hookwire_${version}_${host%/*}_${host#*/}/hookwire"
    "$bin" version | tee "$tmp/version"
    grep -q "^  commit:     $commit\$" "$tmp/version" || { echo "FAIL: hookwire version does not print commit $commit"; exit 1; }
    grep -q "^hookwire $version\$" "$tmp/version" || { echo "FAIL: hookwire version does not print $version"; exit 1; }
    ;;
esac
echo "reproducible: $n files, identical SHA256SUMS"
cat "$tmp/out1/SHA256SUMS"
