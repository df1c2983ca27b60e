#!/usr/bin/env bash
# Installs the pinned Pulumi CLI, checked against the pinned sha256 of its release tarball before anything
# in it runs, into $PULUMI_INSTALL_DIR (default ~/.pulumi/bin). Fails closed: no pinned checksum, a download
# that does not match it, or a binary that reports another version, and nothing is installed.
#
# PULUMI_VERSION is the version of the pulumi Python SDK in requirements.txt (tests/test_workflows.py checks
# that they match). PULUMI_SHA256 is the sha256 of pulumi-v<version>-linux-x64.tar.gz as the release lists it
# in pulumi-<version>-checksums.txt (github.com/pulumi/pulumi/releases/tag/v<version>). It is pinned here, in
# the repository, so a change of it is reviewed; the environment may supply it only while the pin is empty.
set -euo pipefail

PULUMI_VERSION=3.260.0
PINNED_SHA256=""  # TODO: pin the sha256 of pulumi-v3.260.0-linux-x64.tar.gz from the release's checksums file

want="${PINNED_SHA256:-${PULUMI_SHA256:-}}"
if [ -n "$PINNED_SHA256" ] && [ -n "${PULUMI_SHA256:-}" ] && [ "$PULUMI_SHA256" != "$PINNED_SHA256" ]; then
  echo "install-pulumi: PULUMI_SHA256 in the environment differs from the pinned checksum; refusing" >&2
  exit 1
fi
if ! [[ "$want" =~ ^[0-9a-f]{64}$ ]]; then
  echo "install-pulumi: no sha256 is pinned for the Pulumi CLI v$PULUMI_VERSION, so it is not installed." \
       "Fix: set PINNED_SHA256 in .semaphore/install-pulumi.sh to the sha256 of" \
       "pulumi-v$PULUMI_VERSION-linux-x64.tar.gz listed in pulumi-$PULUMI_VERSION-checksums.txt of the release" >&2
  exit 1
fi

dir="${PULUMI_INSTALL_DIR:-$HOME/.pulumi/bin}"
tarball="pulumi-v$PULUMI_VERSION-linux-x64.tar.gz"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 --retry 3 \
  --output "$work/$tarball" "https://get.pulumi.com/releases/sdk/$tarball"
got="$(sha256sum "$work/$tarball" | cut -d' ' -f1)"
if [ "$got" != "$want" ]; then
  echo "install-pulumi: $tarball has sha256 $got, not the pinned $want; refusing to install it" >&2
  exit 1
fi
mkdir -p "$work/unpacked"
tar -xzf "$work/$tarball" -C "$work/unpacked" --strip-components=1 --no-same-owner
version="$("$work/unpacked/pulumi" version)"
if [ "$version" != "v$PULUMI_VERSION" ]; then
  echo "install-pulumi: the verified tarball's pulumi reports $version, not v$PULUMI_VERSION; refusing" >&2
  exit 1
fi
mkdir -p "$dir"
cp -f "$work"/unpacked/pulumi* "$dir"/
echo "install-pulumi: Pulumi CLI v$PULUMI_VERSION (sha256 $want) installed in $dir"
