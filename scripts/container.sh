#!/usr/bin/env bash
# Build Hookwire's container image from the Containerfile, offline:
#
#   scripts/container.sh VERSION [ARCH]     ARCH: amd64 (default) or arm64
#
# Uses dist/hookwire_VERSION_linux_ARCH/hookwire from scripts/release.sh
# (built here if missing), the build host's CA bundle, and buildah (or
# $CONTAINER_BUILDER: "podman build", "docker build"). The image is tagged
# hookwire:VERSION and also written as an OCI archive to
# dist/hookwire_VERSION_linux_ARCH.oci.tar when the builder is buildah.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: scripts/container.sh VERSION [ARCH]}
arch=${2:-amd64}
out=${RELEASE_OUT:-dist}
[ "$out" = dist ] || { echo "the Containerfile reads dist/: leave RELEASE_OUT unset" >&2; exit 2; }
bin="dist/hookwire_${version}_linux_${arch}/hookwire"
if [ ! -x "$bin" ]; then
  RELEASE_TARGETS="linux/$arch" scripts/release.sh "$version"
fi
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -r "$ca" ] || { echo "no CA bundle at $ca (install ca-certificates, or set CA_BUNDLE)" >&2; exit 1; }
rm -rf dist/container
# Directories are staged inside a parent: COPY keeps the modes of what is
# under its source, not of the source directory itself.
mkdir -p dist/container/tmp/tmp dist/container/data/data
chmod 1777 dist/container/tmp/tmp
chmod 0700 dist/container/data/data
cp "$ca" dist/container/ca-certificates.crt
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct HEAD)}

builder=${CONTAINER_BUILDER:-buildah build}
tag="hookwire:$version"
flags=${CONTAINER_BUILD_FLAGS:-}
if [ "$builder" = "buildah build" ]; then
  # Reproducible: every file and the image's created time at SOURCE_DATE_EPOCH.
  flags="--timestamp $SOURCE_DATE_EPOCH $flags"
fi
# shellcheck disable=SC2086 # the builder is a command and its subcommand
$builder --platform "linux/$arch" --build-arg "VERSION=$version" --build-arg "TARGETARCH=$arch" \
  -f Containerfile -t "$tag" $flags .
if [ "$builder" = "buildah build" ]; then
  buildah push "$tag" "oci-archive:dist/hookwire_${version}_linux_${arch}.oci.tar:$tag" >/dev/null
  echo "wrote dist/hookwire_${version}_linux_${arch}.oci.tar"
fi
echo "built $tag"
