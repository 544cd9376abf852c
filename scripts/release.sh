#!/usr/bin/env bash
# Build Hookwire's release artifacts, reproducibly:
#
#   scripts/release.sh VERSION            e.g. scripts/release.sh v0.4.0
#
# writes to dist/ (or $RELEASE_OUT):
#   hookwire_VERSION_OS_ARCH.tar.gz       static binary (CGO_ENABLED=0, -trimpath) + README.md + INSTALL.md
#   hookwire_VERSION.cdx.json             CycloneDX SBOM of the binary (cyclonedx-gomod)
#   SHA256SUMS                            sha256sum of each of the above
#   hookwire_VERSION_OS_ARCH/hookwire     the unpacked binaries (used by the Containerfile)
#
# The same commit gives byte-identical files on any machine with the same
# Go version: no build path (-trimpath), no VCS stamp (-buildvcs=false, the
# commit and date come in by -X instead), archive entries sorted with fixed
# owners and mtimes, gzip without a name or time, and the SBOM's timestamp
# and serial number derived from SOURCE_DATE_EPOCH and the commit.
# scripts/release_test.sh checks it by building twice.
#
# Environment:
#   SOURCE_DATE_EPOCH   build time (default: the commit's time)
#   RELEASE_TARGETS     default "linux/amd64 linux/arm64 darwin/amd64 darwin/arm64"
#   RELEASE_OUT         default dist
#   RELEASE_ALLOW_DIRTY=1  build from a modified tree (the commit gets "-dirty")
set -euo pipefail
cd "$(dirname "$0")/.."

CYCLONEDX_GOMOD=github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0

version=${1:-}
if [[ ! $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "usage: scripts/release.sh VERSION   (a semantic version with a v, e.g. v0.4.0 or v0.4.0-rc.1)" >&2
  exit 2
fi
targets=${RELEASE_TARGETS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
out=${RELEASE_OUT:-dist}

commit=$(git rev-parse HEAD)
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  if [ "${RELEASE_ALLOW_DIRTY:-}" != 1 ]; then
    echo "the work tree has uncommitted changes: commit them (or set RELEASE_ALLOW_DIRTY=1 for a test build)" >&2
    exit 1
  fi
  commit="$commit-dirty"
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct HEAD)}
date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

# Same bytes whatever the caller's environment says.
export CGO_ENABLED=0 GOFLAGS= GOAMD64=v1 GOARM64=v8.0 LC_ALL=C TZ=UTC
umask 022

pkg=github.com/hookwire/hookwire/internal/buildinfo
ldflags="-s -w -X $pkg.version=$version -X $pkg.commit=$commit -X $pkg.date=$date"

rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
echo "hookwire $version  commit $commit  date $date  $(go version | cut -d' ' -f3)"

for target in $targets; do
  os=${target%/*} arch=${target#*/}
  name="hookwire_${version}_${os}_${arch}"
  dir="$out/$name"
  mkdir -p "$dir"
  GOOS=$os GOARCH=$arch go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$dir/hookwire" ./cmd/hookwire
  cp README.md docs/INSTALL.md "$dir/"
  chmod 0755 "$dir" "$dir/hookwire"
  chmod 0644 "$dir/README.md" "$dir/INSTALL.md"
  tar --sort=name --format=gnu --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    -C "$out" -cf - "$name" | gzip -n -9 > "$out/$name.tar.gz"
  echo "built ${out#"$PWD/"}/$name.tar.gz"
done

# The SBOM lists the modules linked into the binary (the same for every
# target; the first is described). Its timestamp becomes SOURCE_DATE_EPOCH
# and its serial number a UUID derived from the commit and version, so it
# is reproducible too.
first=${targets%% *}
sbom="$out/hookwire_${version}.cdx.json"
serial=$(printf 'hookwire %s %s' "$version" "$commit" | sha256sum | cut -c1-32 |
  sed -E 's/^(.{8})(.{4}).(.{3}).(.{3})(.{12})$/\1-\2-5\3-8\4-\5/')
# cyclonedx-gomod reads the commit with go-git, which does not follow a
# linked work tree's .git file: describe a throwaway clone there instead.
src=.
if [ -f .git ]; then
  src=$(mktemp -d)
  trap 'rm -rf "$src"' EXIT
  git clone -q . "$src"
  git -C "$src" checkout -q "${commit%-dirty}"
fi
GOOS=${first%/*} GOARCH=${first#*/} go run "$CYCLONEDX_GOMOD" app -json -std -licenses=false \
  -serial "$serial" -main cmd/hookwire -output "$sbom.tmp" "$src"
sed -E 's/"timestamp": *"[^"]*"/"timestamp": "'"$date"'"/' "$sbom.tmp" > "$sbom"
rm "$sbom.tmp"
echo "built $sbom"

(cd "$out" && sha256sum -- *.tar.gz *.cdx.json > SHA256SUMS)
echo "wrote $out/SHA256SUMS:"
cat "$out/SHA256SUMS"
