#!/usr/bin/env bash
# Build (or reuse) a systemd test-host image for one Debian release with debootstrap.
# The image holds what a minimal cloud image has (python3, systemd, sudo) and nothing the
# roles install. It is tagged with a hash of this recipe, so a changed recipe rebuilds it.
# usage: build-image.sh <suite>   (bookworm | trixie); prints the image reference.
set -euo pipefail
suite=${1:?suite}
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
mirror=${NCD_BED_DEBIAN_MIRROR:-http://deb.debian.org/debian}
include=python3,systemd,systemd-sysv,sudo,ca-certificates,procps
recipe_hash=$( { cat "$0"; echo "$suite $include"; } | sha256sum | cut -c1-12)
image=localhost/ncd-bed-${suite}:${recipe_hash}
if podman image exists "$image"; then echo "$image"; exit 0; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ncd-rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase --include="$include" "$suite" "$work/rootfs" "$mirror" >&2
root=$work/rootfs
# Apt inside a test host must see only the bed's repositories, never the internet.
rm -f "$root/etc/apt/sources.list" "$root"/etc/apt/sources.list.d/*
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
# A fresh machine id per container, as a cloud image has.
: > "$root/etc/machine-id"
tar -C "$root" -c . | podman import --change 'CMD=["/lib/systemd/systemd"]' - "$image" >&2
echo "$image"
