"""core_dump_info main() over a fake host: files, systemctl answers, a fake /proc."""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract, targets
from ansible_collections.neuron_ops.core_dump.plugins.modules import core_dump, core_dump_info

LOCAL = contract.LOCAL_DIR_VAR
S3 = contract.S3_PREFIX_VAR
HOOK = "/opt/aws/neuron/bin/neuron-dump"
OURS = b'#!/usr/bin/python3\nNEURON_CORE_DUMP_HOOK_VERSION = "0.1.0"\n'
MAPS = "7f10-7f20 r-xp 00000000 08:01 456 /opt/aws/neuron/lib/libnrt.so.1\n"


@pytest.fixture
def node(host, commands):
    """A booted host with our hook, a fake /proc, and a manager whose environment we control."""
    os.makedirs(host.path("/run/systemd/system"))
    host.write("/etc/environment", b'PATH="/usr/local/bin:/usr/bin:/bin"\n')
    host.write(HOOK, OURS, 0o755)
    for directory in ("/opt", "/opt/aws", "/opt/aws/neuron", "/opt/aws/neuron/bin"):
        os.chmod(host.path(directory), 0o755)
    os.makedirs(host.path("/proc/self/ns"))
    os.symlink("mnt:[1]", host.path("/proc/self/ns/mnt"))
    host.manager_env = {"LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"}
    host.commands = commands
    return host


def set_manager_env(node, env):
    node.commands.respond(["systemctl", "show-environment"], out="".join("%s=%s\n" % kv for kv in env.items()))


def set_unit(node, unit, env, need_reload="no"):
    text = "Environment=%s\nLoadState=loaded\nNeedDaemonReload=%s\n" % (
        " ".join("%s=%s" % kv for kv in env.items()),
        need_reload,
    )
    node.commands.respond(
        ["systemctl", "show", "-p", "Environment", "-p", "LoadState", "-p", "NeedDaemonReload", unit], out=text
    )


def add_process(node, pid, env, unit="train.service", mnt="mnt:[1]"):
    base = node.path("/proc/%d" % pid)
    os.makedirs(os.path.join(base, "ns"))
    with open(os.path.join(base, "maps"), "w") as handle:
        handle.write(MAPS)
    with open(os.path.join(base, "comm"), "w") as handle:
        handle.write("python3\n")
    with open(os.path.join(base, "cgroup"), "w") as handle:
        handle.write("0::/system.slice/%s\n" % unit)
    with open(os.path.join(base, "environ"), "wb") as handle:
        handle.write(b"".join(b"%s=%s\0" % (k.encode(), v.encode()) for k, v in env.items()))
    os.symlink(mnt, os.path.join(base, "ns", "mnt"))


def enable(node, run_module, **args):
    result, failed = run_module(core_dump, args)
    assert not failed, result
    return result


def by_name(result):
    return {c["name"]: c for c in result["contexts"]}


def test_enabled_everywhere_no_drift(node, run_module):
    enable(node, run_module, units=["train"])
    values = {LOCAL: contract.DEFAULT_LOCAL_DIR}
    set_manager_env(node, dict(node.manager_env, **values))
    set_unit(node, "train.service", values)
    result, failed = run_module(core_dump_info, {"expect": "enabled", "fail_on_drift": True})
    assert not failed, result["msg"] if failed else None
    assert result["effective_state"] == "enabled" and result["drift"] == []
    contexts = by_name(result)
    assert sorted(contexts) == ["login_shell", "pam_session", "systemd_service", "unit:train.service"]
    for ctx in contexts.values():
        assert ctx["available"] and ctx["variables"][LOCAL] == contract.DEFAULT_LOCAL_DIR
        assert ctx["effective"]["local_base"] == "/var/lib/neuron-core-dump/dumps"
    assert result["hook"]["kind"] == "ours" and result["hook"]["version"] == "0.1.0"
    assert result["hook"]["gate_executable"] is True
    assert {t["name"] for t in result["targets"] if t["exists"]} == {
        "environment",
        "profile",
        "systemd_manager",
        "unit_dropin:train.service",
    }
    assert result["systemd"] == {"running": True, "version": 252, "manager_expands_specifiers": True}


def test_disabled_expectation_fails_with_every_reason(node, run_module):
    enable(node, run_module)
    set_manager_env(node, node.manager_env)  # drop-in written but not applied
    result, failed = run_module(core_dump_info, {"expect": "disabled", "fail_on_drift": True})
    assert failed
    assert result["msg"].startswith("core dump settings drift (expected disabled): ")
    for where in ("login_shell", "pam_session", "systemd_service", "systemd_manager", "profile", "environment"):
        assert where + ":" in result["msg"]
    assert "daemon-reexec" in result["msg"]
    # Every other key is still returned.
    assert result["contexts"] and result["hook"]


def test_drift_reported_without_failing(node, run_module):
    enable(node, run_module)
    set_manager_env(node, node.manager_env)
    result, failed = run_module(core_dump_info, {})
    assert not failed
    wheres = [f["where"] for f in result["drift"]]
    assert "contexts" in wheres and "systemd_manager" in wheres
    assert result["effective_state"] == "enabled"  # the manager's unset value means the /tmp default: still on


def test_disabled_state(node, run_module):
    run_module(core_dump, {"state": "disabled", "hook": "disable"})
    set_manager_env(node, dict(node.manager_env, **{LOCAL: "", S3: ""}))
    result, failed = run_module(core_dump_info, {"expect": "disabled", "fail_on_drift": True})
    assert not failed, result.get("msg")
    assert result["effective_state"] == "disabled"
    assert result["hook"]["disabled_by_core_dump"] is True and result["hook"]["gate_executable"] is False


def test_hook_not_executable_is_drift_when_enabled_expected(node, run_module):
    enable(node, run_module)
    set_manager_env(node, dict(node.manager_env, **{LOCAL: contract.DEFAULT_LOCAL_DIR}))
    os.chmod(node.path(HOOK), 0o700)
    result, _failed = run_module(core_dump_info, {"expect": "enabled"})
    hook_findings = [f for f in result["drift"] if f["where"] == "hook"]
    assert hook_findings and "any unprivileged user" in hook_findings[0]["reason"]
    assert result["effective_state"] == "disabled"
    # Evaluated as root, the same hook is fine.
    result, _failed = run_module(core_dump_info, {"expect": "enabled", "workload_user": "root"})
    assert not [f for f in result["drift"] if f["where"] == "hook"]


def test_restart_required_lists_stale_processes(node, run_module):
    run_module(core_dump, {"state": "disabled"})
    set_manager_env(node, dict(node.manager_env, **{LOCAL: "", S3: ""}))
    add_process(node, 100, {"HOME": "/root"})  # started before the change: variables unset
    add_process(node, 101, {LOCAL: "", S3: ""})  # started after: fine
    add_process(node, 102, {}, unit="docker-1.scope", mnt="mnt:[9]")  # a container: not compared
    result, _failed = run_module(core_dump_info, {})
    assert [p["pid"] for p in result["restart_required"]] == [100]
    stale = result["restart_required"][0]
    assert stale["context"] == "systemd_service" and stale["unit"] == "train.service"
    assert stale["differs"] == [
        {"variable": LOCAL, "process": None, "current": ""},
        {"variable": S3, "process": None, "current": ""},
    ]
    assert result["processes"]["runtime_processes"] == 3 and result["processes"]["foreign_namespace"] == [102]


def test_storage_host_status_and_vendor(node, run_module):
    enable(node, run_module)
    set_manager_env(node, dict(node.manager_env, **{LOCAL: contract.DEFAULT_LOCAL_DIR}))
    node.write("/var/lib/neuron-core-dump/dumps/dt-1-cid-0/core", b"x" * 10)
    status = {"spool_depth": 1, "pending_dumps": 1, "uploader": {"healthy": True, "detail": "idle"}}
    node.write("/usr/local/bin/neuron-core-dump", "#!/bin/sh\necho '%s'\n" % json.dumps(status), 0o755)
    node.write("/opt/aws/neuron/bin/neuron-dump.distrib", b"#!/bin/sh\n", 0o755)
    node.commands.bins["dpkg-query"] = "/usr/bin/dpkg-query"
    node.commands.respond(["dpkg-query", "-W", "-f", "${Version}", "aws-neuronx-tools"], out="2.32.28.0-1")
    result, _failed = run_module(core_dump_info, {})
    roots = {s["path"]: s for s in result["storage"]}
    # Paths in results are the fake tree's: the patterns themselves are not rebased.
    assert roots["/var/lib/neuron-core-dump/dumps"]["name_prefix"] == "dt-"
    assert "/tmp/neuron-core-dump" in roots
    assert result["host_status"] == status
    assert result["vendor"]["present"] and result["vendor"]["package_version"] == "2.32.28.0-1"


def test_host_status_garbage_is_an_error_not_a_crash(node, run_module):
    node.write("/usr/local/bin/neuron-core-dump", "#!/bin/sh\necho nope; exit 2\n", 0o755)
    set_manager_env(node, node.manager_env)
    result, failed = run_module(core_dump_info, {})
    assert not failed and "without a JSON object" in result["host_status"]["error"]


def test_without_systemd(host, commands, run_module):
    host.write("/etc/environment", b"")
    result, failed = run_module(core_dump_info, {"units": ["x"]})
    assert not failed
    contexts = by_name(result)
    assert not contexts["systemd_service"]["available"] and contexts["systemd_service"]["error"]
    assert not contexts["unit:x.service"]["available"]
    assert result["hook"]["kind"] == "missing"
    assert result["vendor"]["package_version"] is None and result["host_status"] is None


def test_unit_pending_reload(node, run_module):
    enable(node, run_module, units=["train"])
    set_manager_env(node, dict(node.manager_env, **{LOCAL: contract.DEFAULT_LOCAL_DIR}))
    set_unit(node, "train.service", {}, need_reload="yes")
    result, _failed = run_module(core_dump_info, {})
    finding = [f for f in result["drift"] if f["where"] == "unit_dropin:train.service"]
    assert finding and "daemon-reload" in finding[0]["reason"]


def test_invalid_unit_name(node, run_module):
    result, failed = run_module(core_dump_info, {"units": ["a b"]})
    assert failed and "not a valid systemd unit name" in result["msg"]


def test_every_name_is_reported_escaped(node, run_module):
    """Names that are not UTF-8, hold control characters or are very long cannot break the result."""
    long_name = "long-" + "\udcff" * 200 + ".bin"
    status = {
        "last_error": "upload failed: bad-\udcff\udcfe.bin; ctl-\x1b[31m\r.bin",
        "hard_cap_deletions": [long_name],
        "uploader": {"healthy": False, "detail": "dt-\x00x"},
    }
    # The host program's JSON carries such names as \udcXX escapes, which json.loads turns into surrogates.
    node.write("/usr/local/bin/neuron-core-dump", "#!/bin/sh\ncat <<'EOF'\n%s\nEOF\n" % json.dumps(status), 0o755)
    node.write("/etc/environment", b"NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=/d/\xff\x1b-%d\n")
    set_manager_env(node, node.manager_env)
    result, failed = run_module(core_dump_info, {"expect": "disabled", "fail_on_drift": True})
    assert failed and "/d/\\xff\\x1b-%d" in result["msg"]
    assert result["host_status"]["last_error"] == "upload failed: bad-\\xff\\xfe.bin; ctl-\\x1b[31m\\x0d.bin"
    assert result["host_status"]["hard_cap_deletions"] == ["long-" + "\\xff" * 200 + ".bin"]
    assert result["host_status"]["uploader"]["detail"] == "dt-\\x00x"
    assert by_name(result)["pam_session"]["variables"][LOCAL] == "/d/\\xff\\x1b-%d"
    json.dumps(result, ensure_ascii=False).encode("utf-8")  # strict UTF-8, as the controller requires


# Container targets carry other values on purpose; test_container_coverage.py covers them.
@pytest.mark.parametrize("target", [t for t in targets.REGISTRY if not t.container], ids=lambda t: t.name)
def test_every_target_is_read_back_and_its_drift_reported(node, run_module, target):
    """Each registry entry is reported by core_dump_info, and a change to it is drift."""
    enable(node, run_module, units=["train"])
    files = target.files(["train.service"], False)
    off = {LOCAL: "", S3: ""}
    for _name, path in files:
        before = node.read(path[len(node.root) :])
        with open(path, "wb") as handle:
            handle.write(target.render(before, off, True))
    result, _failed = run_module(core_dump_info, {"expect": "enabled"})
    reported = {t["name"]: t for t in result["targets"]}
    wheres = {f["where"] for f in result["drift"]}
    for name, path in files:
        assert reported[name]["path"] == path and reported[name]["exists"] and reported[name]["managed"]
        assert reported[name]["variables"] == off
        assert name in wheres
    assert "targets" in wheres  # and it disagrees with the other files


def test_check_mode_is_the_same(node, run_module):
    set_manager_env(node, node.manager_env)
    normal, _failed = run_module(core_dump_info, {})
    checked, _failed = run_module(core_dump_info, {}, check_mode=True)
    assert normal["contexts"] == checked["contexts"] and not checked["changed"]


def test_workload_user_adds_a_su_login_context(node, run_module):
    enable(node, run_module)
    set_manager_env(node, dict(node.manager_env, **{LOCAL: contract.DEFAULT_LOCAL_DIR}))
    result, _failed = run_module(core_dump_info, {"workload_user": "root", "expect": "enabled"})
    contexts = by_name(result)
    assert contexts["su_login:root"]["available"]
    assert contexts["su_login:root"]["variables"][LOCAL] == contract.DEFAULT_LOCAL_DIR
    assert result["hook"]["executable_by"]["workload_user"]["verified"] is True
    assert result["drift"] == []


def test_hook_replaced_behind_the_role_is_drift_by_checksum(node, run_module):
    # The role keeps a copy of the hook it installed; a package transaction that writes the
    # vendor file over it (rpm without a diversion) or a hand edit is found by checksum.
    reference = "/usr/local/lib/neuron-core-dump/neuron-dump.hook"
    node.write(reference, OURS, 0o644)
    result, _failed = run_module(core_dump_info, {})
    assert result["hook"]["expected_sha256"] == result["hook"]["sha256"]
    assert not [f for f in result["drift"] if f["where"] == "hook"]
    node.write(HOOK, b"#!/bin/sh\n# vendor neuron-dump\n", 0o755)
    result, _failed = run_module(core_dump_info, {})
    findings = [f for f in result["drift"] if f["where"] == "hook"]
    assert len(findings) == 1 and "is vendor" in findings[0]["reason"] and reference in findings[0]["reason"]
    assert result["hook"]["expected_sha256"] != result["hook"]["sha256"]
