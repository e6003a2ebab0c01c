#!/usr/bin/env bash
# The host program's integration tests (tests/integration/host_program) under Python 3.9, the
# python3 of Amazon Linux 2023, with the oldest boto3/botocore the uploader supports: 1.26.27 /
# 1.29.27 (Debian 12's python3-boto3, the floor stated in docs). Runs in a Debian 11 container
# (its /usr/bin/python3 is 3.9, the hook's interpreter), with a venv for the uploader, the CLI
# and the test tools. Needs network once, to build the image (debootstrap) and the venv (PyPI).
# The two files that drive ansible-playbook (ansible-core needs Python >= 3.11 on the controller)
# are left out. usage: py39-host-program.sh [pytest args]; the log goes to stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
mirror=${NCD_BED_DEBIAN_MIRROR:-http://deb.debian.org/debian}
include=python3,python3-venv,procps,sudo,ca-certificates,util-linux
pins="boto3==1.26.27 botocore==1.29.27"
# The image is only debootstrap's output: keyed by what goes into it, not by this script's test steps.
recipe_hash=$(echo "debootstrap --variant=minbase bullseye $include" | sha256sum | cut -c1-12)
image=localhost/ncd-bed-py39:${recipe_hash}
if ! podman image exists "$image"; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/ncd-rootfs.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  debootstrap --variant=minbase --include="$include" bullseye "$work/rootfs" "$mirror" >&2
  tar -C "$work/rootfs" -c . | podman import - "$image" >&2
fi
# pip in the container trusts what the host's pip trusts (a TLS-inspecting proxy's CA, if any).
ca=()
[[ -f /etc/ssl/certs/ca-certificates.crt ]] &&
  ca=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/ncd-host-ca.crt:ro -e PIP_CERT=/etc/ssl/ncd-host-ca.crt)
podman run --rm --network host "${ca[@]}" -v "$repo:/src:ro" "$image" bash -euc '
  python3 --version
  python3 -m venv /venv
  /venv/bin/pip install -q --disable-pip-version-check '"$pins"' "moto[server]" pytest pytest-xdist hypothesis
  /venv/bin/python -c "import boto3, botocore, moto; print(\"boto3\", boto3.__version__, \"botocore\", botocore.__version__, \"moto\", moto.__version__)"
  mkdir /work && cd /src && tar -c --exclude=./.bed --exclude=./.git . | tar -C /work -x
  cd /work && /venv/bin/python -m pytest -q -p no:cacheprovider -n 2 -m "not bed" \
    --ignore tests/integration/host_program/test_pull_job.py --ignore tests/integration/host_program/test_job_fetch.py \
    tests/integration/host_program "$@"
' py39 "$@"
