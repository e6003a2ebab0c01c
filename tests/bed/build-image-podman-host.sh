#!/usr/bin/env bash
# Build (or reuse) the demo's workload-container host: the bed's Debian 12 image plus Debian 12's own
# Podman (4.3.1) and runc, as a Neuron host AMI ships a container runtime. Nothing of the collection.
# Tagged with a hash of this recipe and the base image, so either changing rebuilds it.
# usage: build-image-podman-host.sh <base image>   (the bed's bookworm image); prints the image reference.
#
# Podman runs nested in a privileged systemd container here, so the image's containers.conf and
# storage.conf say what this machine needs (they are the host's Podman settings, not the collection's):
# runc (crun cannot run on this machine's hybrid cgroup v1 layout), cgroupfs, ulimits within the
# machine's hard limits, no network (the workload needs none) and vfs storage (overlay on overlay fails).
# One thing cannot be said here: Podman 4.3 ignores containers.conf's cgroupns on cgroup v1, and the
# nested runc finds its cgroup only in a private cgroup namespace, so `podman run` needs
# --cgroupns=private on this machine (demo/run.sh passes it).
set -euo pipefail
base=${1:?base image}
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
mirror=${NCD_BED_DEBIAN_MIRROR:-http://deb.debian.org/debian}
recipe_hash=$( { cat "$0"; echo "$base"; } | sha256sum | cut -c1-12)
image=localhost/ncd-bed-bookworm-podman:${recipe_hash}
if podman image exists "$image"; then echo "$image"; exit 0; fi

builder=ncd-bed-build-podman-host-$$
trap 'podman rm -f -t 0 "$builder" >/dev/null 2>&1 || true' EXIT
podman run --name "$builder" --network host "$base" sh -ec "
  echo 'deb $mirror bookworm main' > /etc/apt/sources.list
  apt-get -qq update
  DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends podman runc >/dev/null
  # apt inside a test host sees only the bed's repositories, as in build-image.sh
  rm -f /etc/apt/sources.list; rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
  cat > /etc/containers/containers.conf <<'CONF'
[containers]
netns = \"none\"
default_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
CONF
  cat > /etc/containers/storage.conf <<'CONF'
[storage]
driver = \"vfs\"
runroot = \"/run/containers/storage\"
graphroot = \"/var/lib/containers/storage\"
CONF
" >&2
podman commit -q --change 'CMD=["/lib/systemd/systemd"]' "$builder" "$image" >&2
echo "$image"
