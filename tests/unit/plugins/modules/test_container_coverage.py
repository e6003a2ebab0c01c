"""core_dump_info's container section over a fake host: runtimes, files, area, container processes."""

from __future__ import annotations

import os

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import container_area, contract
from ansible_collections.neuron_ops.core_dump.plugins.modules import core_dump, core_dump_info

LOCAL, S3 = contract.LOCAL_DIR_VAR, contract.S3_PREFIX_VAR
ID = "ab" * 32
SPEC = "/etc/cdi/neuron-ops.io-core-dump.json"


@pytest.fixture
def box(host, commands):
    os.makedirs(host.path("/proc/self/ns"))
    os.symlink("mnt:[1]", host.path("/proc/self/ns/mnt"))
    commands.bins["podman"] = "/usr/bin/podman"
    commands.respond(["podman", "--version"], out="podman version 4.3.1\n")
    host.commands = commands
    return host


def container_process(box, pid, env, container_id=ID):
    base = "/proc/%d" % pid
    box.write(base + "/maps", "7f00-7f01 r-xp 0 08:01 1 /opt/aws/neuron/lib/libnrt.so.1\n")
    box.write(base + "/comm", "python3\n")
    box.write(base + "/cgroup", "0::/machine.slice/libpod-%s.scope/container\n" % container_id)
    box.write(base + "/environ", b"".join(b"%s=%s\0" % (k.encode(), v.encode()) for k, v in env.items()))
    os.makedirs(box.path(base + "/ns"))
    os.symlink("mnt:[2]", box.path(base + "/ns/mnt"))


def info(run_module, **args):
    result, failed = run_module(core_dump_info, args)
    assert not failed or args.get("fail_on_drift"), result
    return result


def test_no_container_targets_means_not_covered(box, run_module):
    result = info(run_module)
    section = result["containers"]
    assert section["covered"] is False and section["routes"] == []
    assert section["runtimes"][0]["name"] == "podman" and section["cdi_runtimes"] == ["podman"]
    assert all(not f["exists"] for f in section["files"])
    assert not [f for f in result["drift"] if f["where"].startswith(("cdi", "podman", "container"))]


def test_enabled_spec_covers_and_a_stale_container_must_restart(box, run_module):
    run_module(core_dump, {"targets": ["cdi", "podman"]})
    current = {LOCAL: container_area.CONTAINER_LOCAL_DIR, S3: ""}
    container_process(box, 4242, current)
    container_process(box, 4343, {"PATH": "/bin"}, container_id="cd" * 32)  # started without the device
    result = info(run_module, expect="enabled")
    section = result["containers"]
    assert section["covered"] is True and section["routes"] == ["cdi", "podman_default"]
    assert section["area"]["problems"] == []
    assert [(p["pid"], p["runtime"], p["container_id"]) for p in section["processes"]] == [
        (4242, "podman", ID),
        (4343, "podman", "cd" * 32),
    ]
    (stale,) = [r for r in result["restart_required"] if r["context"].startswith("container:")]
    assert stale["pid"] == 4343 and stale["context"] == "container:" + "cd" * 6
    assert {d["variable"] for d in stale["differs"]} == {LOCAL, S3}
    assert [f for f in result["drift"] if f["where"].startswith(("cdi", "podman", "container"))] == []


def test_disabled_spec_is_drift_when_enabled_is_expected(box, run_module):
    run_module(core_dump, {"state": "disabled", "targets": ["cdi"]})
    result = info(run_module, expect="enabled")
    wheres = {f["where"] for f in result["drift"]}
    assert "cdi:/etc/cdi" in wheres and result["containers"]["covered"] is False
    result = info(run_module, expect="disabled")
    assert "cdi:/etc/cdi" not in {f["where"] for f in result["drift"]}


def test_tampered_spec_and_area_are_reported(box, run_module):
    run_module(core_dump, {"targets": ["cdi"]})
    data = box.read(SPEC).replace(b"NEURON_RT_S3_CORE_DUMP_PREFIX=", b"NEURON_RT_S3_CORE_DUMP_PREFIX=s3://tenant/x")
    box.write(SPEC, data)
    os.chmod(box.path("/var/lib/neuron-core-dump/containers/shared"), 0o777)
    result = info(run_module)
    reasons = " | ".join(f["reason"] for f in result["drift"])
    assert "container's credentials" in reasons and "mode 0777, expected 1733" in reasons
    assert result["containers"]["covered"] is False


def test_missing_area_with_an_enabled_spec_is_drift(box, run_module):
    run_module(core_dump, {"targets": ["cdi"]})
    os.rmdir(box.path("/var/lib/neuron-core-dump/containers/shared"))
    result = info(run_module)
    assert any("fail to start" in f["reason"] for f in result["drift"])


def test_invalid_area_option_fails(box, run_module):
    result, failed = run_module(core_dump_info, {"container_dump_dir": "rel"})
    assert failed and "container_dump_dir" in result["msg"]
