#!/usr/bin/env bash
# The host program's integration tests (tests/integration/host_program) under Python 3.9, the
# python3 of Amazon Linux 2023, with the oldest boto3/botocore the uploader supports: 1.26.27 /
# 1.29.27 (Debian 12's python3-boto3, the floor stated in docs). Runs in a Debian 11 container
# (its /usr/bin/python3 is 3.9, the hook's interpreter), with a venv for the uploader, the CLI
# and the test tools, pinned by py39-requirements.txt. Needs network only to build its two images
# (debootstrap, then PyPI for the venv); both are kept and reused while what goes into them is
# unchanged. The two files that drive ansible-playbook (ansible-core needs Python >= 3.11 on the
# controller) are left out. Run by `make test` (tests/run-all.sh, a molecule lane item).
# usage: py39-host-program.sh [pytest args]; the log goes to stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
mirror=${NCD_BED_DEBIAN_MIRROR:-http://deb.debian.org/debian}
include=python3,python3-venv,procps,sudo,ca-certificates,util-linux
lock=$here/py39-requirements.txt

# The base image is only debootstrap's output: keyed by what goes into it, not by this script's test steps.
recipe_hash=$(echo "debootstrap --variant=minbase bullseye $include" | sha256sum | cut -c1-12)
base=localhost/ncd-bed-py39:${recipe_hash}
if ! podman image exists "$base"; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/ncd-rootfs.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  debootstrap --variant=minbase --include="$include" bullseye "$work/rootfs" "$mirror" >&2
  tar -C "$work/rootfs" -c . | podman import - "$base" >&2
fi

# The venv image: the base plus /venv installed from the lock, keyed by both (installing it is
# most of an uncached run). Built in a named container and committed only once pip succeeded.
venv_hash=$( { echo "$base"; cat "$lock"; } | sha256sum | cut -c1-12)
image=localhost/ncd-bed-py39-venv:${venv_hash}
if ! podman image exists "$image"; then
  builder=ncd-py39-venv-build-$$
  trap 'podman rm -f -t 0 "$builder" >/dev/null 2>&1 || true; rm -rf "${work:-}"' EXIT
  # pip in the container trusts what the host's pip trusts (a TLS-inspecting proxy's CA, if any).
  ca=()
  [[ -f /etc/ssl/certs/ca-certificates.crt ]] && ca=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/ncd-host-ca.crt:ro)
  podman run --name "$builder" --network host "${ca[@]}" -v "$lock:/tmp/py39-requirements.txt:ro" "$base" bash -euc '
    [[ -f /etc/ssl/ncd-host-ca.crt ]] && export PIP_CERT=/etc/ssl/ncd-host-ca.crt
    python3 -m venv /venv
    /venv/bin/pip install -q --disable-pip-version-check --no-deps -r /tmp/py39-requirements.txt
    /venv/bin/pip check
  ' >&2
  podman commit -q "$builder" "$image" >/dev/null
fi

podman run --rm --network host -v "$repo:/src:ro" "$image" bash -euc '
  python3 --version
  /venv/bin/python -c "import boto3, botocore, moto; print(\"boto3\", boto3.__version__, \"botocore\", botocore.__version__, \"moto\", moto.__version__)"
  mkdir /work && cd /src && tar -c --exclude=./.bed --exclude=./.git . | tar -C /work -x
  cd /work && /venv/bin/python -m pytest -q -p no:cacheprovider -n 2 -m "not bed" \
    --ignore tests/integration/host_program/test_pull_job.py --ignore tests/integration/host_program/test_job_fetch.py \
    tests/integration/host_program "$@"
' py39 "$@"
