"""The dump_env role, run by real ansible-playbook, writes what real Podman then applies.

Everything the role writes lands in throwaway overlays: each step runs in its own
mount namespace (unshare -m) with /etc and /srv as overlays whose upper
directories live in the test's tmp_path, so the steps share state and this
machine's /etc and /srv are never touched. Host targets are limited to
``profile`` and systemd is not re-executed (dump_env_apply: false).
Needs root, podman, unshare, ansible-playbook and NCD_IMAGE_BOOKWORM (the ``bed`` marker, tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import cdi_spec, container_area, contract

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BED_CONF = os.path.join(ROOT, "tests", "bed", "containers.conf")
IMAGE = os.environ.get("NCD_IMAGE_BOOKWORM")
AREA = "/srv/neuron-core-dump/containers"
LOCAL, S3 = contract.LOCAL_DIR_VAR, contract.S3_PREFIX_VAR

pytestmark = pytest.mark.bed("podman", "unshare", "ansible-playbook")

PLAYBOOK = (
    """
- hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: neuron_ops.core_dump.dump_env
      vars:
        dump_env_state: "{{ state }}"
        dump_env_targets: [profile]
        dump_env_apply: false
        dump_env_containers: true
        dump_env_container_targets: [cdi, podman]
        dump_env_container_dump_dir: %s
  post_tasks:
    - name: Report
      ansible.builtin.debug:
        var: dump_env_restart_required
"""
    % AREA
)


def in_overlays(tmp_path, command, timeout=300):
    mounts = []
    for target in ("/etc", "/srv"):
        upper, work = tmp_path / ("upper" + target.replace("/", "-")), tmp_path / ("work" + target.replace("/", "-"))
        upper.mkdir(exist_ok=True)
        work.mkdir(exist_ok=True)
        mounts.append(
            "mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir=%s %s" % (target, upper, work, target)
        )
    script = " && ".join([*mounts, command])
    env = dict(
        os.environ,
        CONTAINERS_CONF=BED_CONF,
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".bed", "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def play(tmp_path, state, check=False):
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    run = in_overlays(
        tmp_path,
        "ansible-playbook -i localhost, %s -e state=%s %s"
        % ("--check --diff" if check else "", state, tmp_path / "play.yml"),
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    stats = json.loads(run.stdout)["stats"]["localhost"]
    return stats


def podman(tmp_path):
    probe = 'echo "L=[${%s-unset}] S=[${%s-unset}]"; grep -c " %s " /proc/self/mountinfo || true' % (
        LOCAL,
        S3,
        container_area.CONTAINER_MOUNT,
    )
    return in_overlays(
        tmp_path,
        "podman run --rm --device %s %s sh -c '%s'" % (cdi_spec.DEVICE_REQUEST, IMAGE, probe),
    )


def upper(tmp_path, path):
    top, rest = path.strip("/").split("/", 1)
    return tmp_path / ("upper-" + top) / rest


def test_check_mode_then_enable_is_idempotent_and_podman_applies_it(tmp_path):
    stats = play(tmp_path, "enabled", check=True)
    assert stats["changed"] >= 1
    assert not upper(tmp_path, "/etc/cdi/neuron-ops.io-core-dump.json").exists()
    assert not upper(tmp_path, AREA).exists()

    assert play(tmp_path, "enabled")["changed"] >= 1
    assert play(tmp_path, "enabled")["changed"] == 0  # idempotent
    spec = upper(tmp_path, "/etc/cdi/neuron-ops.io-core-dump.json").read_bytes()
    assert cdi_spec.problems(spec, AREA + "/shared") == []
    assert oct(upper(tmp_path, AREA + "/shared").stat().st_mode & 0o7777) == "0o1733"
    assert upper(tmp_path, "/etc/containers/containers.conf.d/50-neuron-core-dump.conf").is_file()

    run = podman(tmp_path)
    assert run.returncode == 0, run.stderr
    assert "L=[%s] S=[]" % container_area.CONTAINER_LOCAL_DIR in run.stdout and run.stdout.strip().endswith("1")

    assert play(tmp_path, "disabled")["changed"] >= 1
    run = podman(tmp_path)
    assert run.returncode == 0, run.stderr  # still starts with the device request
    assert "L=[] S=[]" in run.stdout and run.stdout.strip().endswith("0")

    assert play(tmp_path, "absent")["changed"] >= 1
    assert not upper(tmp_path, "/etc/cdi/neuron-ops.io-core-dump.json").exists()
    assert upper(tmp_path, AREA + "/shared").is_dir()  # dumps are never removed with the settings
