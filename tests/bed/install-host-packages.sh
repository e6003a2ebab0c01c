#!/usr/bin/env bash
# Install the host packages the bed needs, only when one is missing (re-runs stay fast).
set -euo pipefail
# rpm (rpmbuild, rpmsign) and createrepo-c: the bed's signed rpm repositories.
packages=(podman runc debootstrap dpkg-dev gnupg python3-venv rpm createrepo-c)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "[bed] installing host packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
