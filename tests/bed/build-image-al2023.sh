#!/usr/bin/env bash
# Build (or reuse) the al2023 test-host image: an Amazon Linux 2023 *identity* on a real RPM
# stack, for the roles' dnf path. Like build-image.sh (debootstrap, systemd, tagged with a
# hash of this recipe), plus:
# - Debian 12's rpm 4.18, dnf 4.14 and python3-dnf (AL2023 ships dnf 4.14 and rpm 4.16), with
#   the rpm database in /var/lib/rpm and empty, as on an RPM host;
# - AL2023's /etc/os-release and /etc/system-release, so Ansible sees os_family RedHat,
#   distribution Amazon 2023 and pkg_mgr dnf.
# Debian 11 (Python 3.9, like AL2023) was the first choice, but its archive has no
# dnf-plugins-core (`apt-cache policy dnf-plugins-core` on bullseye: Candidate: (none)), so
# dnf versionlock and post-transaction actions could not run there; the host program's
# Python 3.9 run is separate (tests/bed/py39-host-program.sh). What an AL2023 host installs as
# rpms for the roles (the dnf plugins, python3-boto3), the bed serves as signed rpms (bedctl.py).
# usage: build-image-al2023.sh; prints the image reference.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
mirror=${NCD_BED_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
# gnupg: what rpm_key and dnf's repo_gpgcheck use (AL2023 has gnupg2-minimal).
include=python3,systemd,systemd-sysv,sudo,ca-certificates,procps,rpm,dnf,python3-dnf,gnupg
recipe_hash=$( { cat "$0"; echo "$suite $include"; } | sha256sum | cut -c1-12)
image=localhost/ncd-bed-al2023:${recipe_hash}
if podman image exists "$image"; then echo "$image"; exit 0; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ncd-rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase --include="$include" "$suite" "$work/rootfs" "$mirror" >&2
root=$work/rootfs
# Apt inside a test host must see only the bed's repositories, never the internet.
rm -f "$root/etc/apt/sources.list" "$root"/etc/apt/sources.list.d/*
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
# The identity AL2023 ships (os-release and system-release of the amazonlinux:2023 image);
# /etc/os-release is a symlink to /usr/lib/os-release there as on Debian.
rm -f "$root/etc/os-release" "$root/usr/lib/os-release" "$root/etc/debian_version" "$root/etc/lsb-release"
cat > "$root/usr/lib/os-release" <<'OSR'
NAME="Amazon Linux"
VERSION="2023"
ID="amzn"
ID_LIKE="fedora"
VERSION_ID="2023"
PLATFORM_ID="platform:al2023"
PRETTY_NAME="Amazon Linux 2023.6.20241212"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2023"
HOME_URL="https://aws.amazon.com/linux/amazon-linux-2023/"
DOCUMENTATION_URL="https://docs.aws.amazon.com/linux/"
SUPPORT_URL="https://aws.amazon.com/premiumsupport/"
BUG_REPORT_URL="https://github.com/amazonlinux/amazon-linux-2023"
VENDOR_NAME="AWS"
VENDOR_URL="https://aws.amazon.com/"
SUPPORT_END="2029-06-30"
OSR
ln -s ../usr/lib/os-release "$root/etc/os-release"
echo "Amazon Linux release 2023.6.20241212 (Amazon Linux)" > "$root/etc/system-release"
ln -s system-release "$root/etc/amazon-linux-release"
# dnf's $releasever (AL2023 takes it from the system-release package, absent from this rpmdb).
mkdir -p "$root/etc/dnf/vars" "$root/etc/yum.repos.d" "$root/etc/pki/rpm-gpg"
echo 2023 > "$root/etc/dnf/vars/releasever"
# Debian's rpm keeps its database in ~/.rpmdb; an RPM host keeps it in /var/lib/rpm.
mkdir -p "$root/etc/rpm" "$root/var/lib/rpm"
echo '%_dbpath /var/lib/rpm' > "$root/etc/rpm/macros.dbpath"
chroot "$root" rpmdb --initdb
# A fresh machine id per container, as a cloud image has.
: > "$root/etc/machine-id"
tar -C "$root" -c . | podman import --change 'CMD=["/lib/systemd/systemd"]' - "$image" >&2
echo "$image"
