#!/usr/bin/env bash
# Runs every fuzz target in the repository for a bounded time, one
# `go test -fuzz` per target (Go fuzzes one target per invocation).
#
#   FUZZTIME     time (or count, e.g. 5000x) per target; default 10s
#   FUZZ_FILTER  optional extended regex on "<package dir> <FuzzName>" to run
#                a subset, e.g. FUZZ_FILTER=FuzzOpen or FUZZ_FILTER=signing/
#
# A target is a `func FuzzXxx(f *testing.F)` in a *_test.go file. Seed
# corpora (f.Add and testdata/fuzz/FuzzXxx/) also run in plain `go test`;
# this script explores beyond them. When a target fails, Go saves the input
# under <package>/testdata/fuzz/FuzzXxx/; after the fix, commit that file so
# it stays a regression test. Every target runs even if one fails; the exit
# status is 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-10s}"
filter="${FUZZ_FILTER:-}"

# "<dir> <name>" for every fuzz target, sorted.
targets=$(
  grep -rEo --include='*_test.go' --exclude-dir=testdata --exclude-dir=vendor \
    --exclude-dir=node_modules --exclude-dir=.git \
    '^func Fuzz[A-Za-z0-9_]*\([A-Za-z_][A-Za-z0-9_]* \*testing\.F\)' . |
    sed -E 's#^\./##; s#^(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1 \2#' |
    sort -u
)
if [ -n "$filter" ]; then
  targets=$(grep -E -- "$filter" <<<"$targets" || true)
fi
if [ -z "$targets" ]; then
  echo "fuzz.sh: no fuzz targets found${filter:+ matching $filter}" >&2
  exit 1
fi

failed=()
while read -r dir name; do
  echo "=== fuzz $name in ./$dir for $fuzztime"
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$dir"; then
    failed+=("./$dir $name")
    echo "--- $name FAILED; a failing input found by the fuzzer is saved under $dir/testdata/fuzz/$name/" >&2
  fi
done <<<"$targets"

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz.sh: ${#failed[@]} target(s) failed:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzz.sh: $(wc -l <<<"$targets") target(s) passed, $fuzztime each"
