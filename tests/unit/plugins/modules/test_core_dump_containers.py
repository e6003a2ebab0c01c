"""core_dump with the container targets (cdi, podman): files, area, toggle, check mode, bad input."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import cdi_spec, container_area, contract
from ansible_collections.neuron_ops.core_dump.plugins.modules import core_dump

LOCAL, S3 = contract.LOCAL_DIR_VAR, contract.S3_PREFIX_VAR
SPEC = "/etc/cdi/neuron-ops.io-core-dump.json"
RUN_SPEC = "/var/run/cdi/neuron-ops.io-core-dump.json"
DROPIN = "/etc/containers/containers.conf.d/50-neuron-core-dump.conf"
AREA = "/var/lib/neuron-core-dump/containers"
ON = {"targets": ["cdi", "podman"], "s3_prefix": "s3://host-bucket/%d-%c"}


@pytest.fixture
def box(host, commands):
    return host


def spec_of(box, path=SPEC):
    return json.loads(box.read(path))


def test_enable_writes_spec_dropin_and_area(box, run_module):
    result, failed = run_module(core_dump, ON)
    assert not failed, result
    assert result["changed_targets"] == ["container_area", "cdi", "podman"]
    assert cdi_spec.parse(box.read(SPEC)) == {LOCAL: container_area.CONTAINER_LOCAL_DIR, S3: ""}
    mount = spec_of(box)["devices"][0]["containerEdits"]["mounts"][0]
    assert mount["hostPath"] == box.path(AREA + "/shared")
    assert stat.S_IMODE(os.stat(box.path(AREA)).st_mode) == 0o711
    assert stat.S_IMODE(os.stat(box.path(AREA + "/shared")).st_mode) == 0o1733
    assert b"TERM=xterm" in box.read(DROPIN) and b"PATH=/usr/local/sbin" in box.read(DROPIN)
    assert result["commands"] == []  # no systemd target chosen


def test_second_run_changes_nothing_and_check_mode_writes_nothing(box, run_module):
    planned, _failed = run_module(core_dump, ON, check_mode=True, diff=True)
    assert planned["changed"] and box.read(SPEC) is None and not os.path.exists(box.path(AREA))
    assert [d["after_header"] for d in planned["diff"]][1:] == [box.path(SPEC), box.path(DROPIN)]
    run_module(core_dump, ON)
    before = box.snapshot()
    again, _failed = run_module(core_dump, ON)
    assert not again["changed"] and again["diff"] == [] and box.snapshot() == before


def test_disabled_keeps_the_spec_with_empty_variables(box, run_module):
    run_module(core_dump, ON)
    result, failed = run_module(core_dump, {"state": "disabled", "targets": ["cdi", "podman"]})
    assert not failed and result["changed_targets"] == ["cdi", "podman"]
    assert spec_of(box)["devices"][0]["containerEdits"] == {"env": ["%s=" % LOCAL, "%s=" % S3]}
    assert b"volumes" not in box.read(DROPIN)
    assert os.path.isdir(box.path(AREA + "/shared"))  # never removed: it may hold dumps


def test_absent_removes_spec_and_dropin_in_both_spec_dirs_but_keeps_the_area(box, run_module):
    run_module(core_dump, ON)
    run_module(core_dump, dict(ON, cdi_spec_dir="/var/run/cdi"))
    assert box.read(SPEC) is None and box.read(RUN_SPEC) is not None  # moved, not copied
    box.write(SPEC, b"{}")  # as if an old run left one behind
    _result, failed = run_module(core_dump, {"state": "absent"})
    assert not failed
    assert box.read(SPEC) is None and box.read(RUN_SPEC) is None and box.read(DROPIN) is None
    assert os.path.isdir(box.path(AREA + "/shared"))


def test_container_targets_are_not_default(box, run_module):
    result, _failed = run_module(core_dump, {})
    assert "cdi" not in result["changed_targets"] and box.read(SPEC) is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"container_dump_dir": "relative"}, "absolute"),
        ({"container_dump_dir": "/var/lib/x/../y"}, "normalized"),
        ({"container_dump_dir": "/tmp/area"}, "must not be '/' or under"),
        ({"container_dump_dir": "/var/lib/a:b"}, "colon"),
        ({"container_dump_dir": "/var/lib/neuron-core-dump/dumps/c"}, "overlaps the host's dump directory"),
        ({"container_dump_dir": "/var/lib/neuron-core-dump"}, "overlaps the host's dump directory"),
        ({"cdi_spec_dir": "/opt/cdi"}, "value of cdi_spec_dir must be one of"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(box, run_module, args, expected):
    before = box.snapshot()
    result, failed = run_module(core_dump, dict(ON, **args))
    assert failed and expected in result["msg"], result["msg"]
    assert box.snapshot() == before


def test_hostile_area_is_refused(box, run_module):
    os.makedirs(box.path("/elsewhere"))
    os.makedirs(box.path("/var/lib/neuron-core-dump"), exist_ok=True)
    os.symlink(box.path("/elsewhere"), box.path(AREA))
    result, failed = run_module(core_dump, ON)
    assert failed and "symlink" in result["msg"] and box.read(SPEC) is None
    os.unlink(box.path(AREA))
    box.write(AREA, b"not a directory")
    result, failed = run_module(core_dump, ON)
    assert failed and "not a directory" in result["msg"] and box.read(SPEC) is None


def test_unwritable_spec_dir_is_refused_before_anything_is_written(box, run_module):
    box.write("/etc/cdi", b"a file where the directory should be")
    before = box.snapshot()
    result, failed = run_module(core_dump, dict(ON, targets=["environment", "cdi"]))
    assert failed and "cdi_spec_dir" in result["msg"] and "not a directory" in result["msg"]
    assert box.snapshot() == before  # /etc/environment untouched too


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a read-only tmpfs")
def test_read_only_spec_dir_is_refused(box, run_module, tmp_path):
    """A read-only /etc/cdi (a real read-only mount, in a private namespace) fails clearly."""
    os.makedirs(box.path("/etc/cdi"))
    code = (
        "import sys; sys.path[:0] = %r; from ansible_collections.neuron_ops.core_dump.plugins.module_utils import "
        "container_area as a; print(a.writable_problems('cdi_spec_dir', %r))" % (list(sys.path), box.path("/etc/cdi"))
    )
    out = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            'mount -t tmpfs -o ro tmpfs "$0" && exec python3 -c "$1"',
            box.path("/etc/cdi"),
            code,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "not writable" in out


def test_plain_disable_and_enable_keep_containers_in_step_where_they_are(box, run_module, monkeypatch):
    """disable.yml/enable.yml pass no targets: our existing container files follow, in place."""
    monkeypatch.setattr(container_area, "_FORBIDDEN_ROOTS", ("/proc",))  # the fake host lives under /tmp
    os.makedirs(box.path("/srv"), mode=0o755)
    custom = dict(ON, cdi_spec_dir="/var/run/cdi", container_dump_dir=box.path("/srv/ncd"))
    _result, failed = run_module(core_dump, custom)
    assert not failed, _result
    result, failed = run_module(core_dump, {"state": "disabled"})
    assert not failed and {"cdi", "podman"} <= set(result["changed_targets"])
    assert cdi_spec.parse(box.read(RUN_SPEC)) == {LOCAL: "", S3: ""} and box.read(SPEC) is None
    result, failed = run_module(core_dump, {"s3_prefix": "s3://host-bucket/%d-%c"})
    assert not failed and {"cdi", "podman"} <= set(result["changed_targets"])
    assert json.loads(box.read(RUN_SPEC))["devices"][0]["containerEdits"]["mounts"][0]["hostPath"] == box.path(
        "/srv/ncd/shared"
    )
    again, _failed = run_module(core_dump, custom)
    assert not again["changed"], again["diff"]
