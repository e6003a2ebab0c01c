"""core_dump main(): a real AnsibleModule over a fake host tree (paths patched)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract, etc_environment
from ansible_collections.neuron_ops.core_dump.plugins.modules import core_dump

REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
)
LOCAL = contract.LOCAL_DIR_VAR
S3 = contract.S3_PREFIX_VAR
ENV = "/etc/environment"
PROFILE = "/etc/profile.d/neuron-core-dump.sh"
MANAGER = "/etc/systemd/system.conf.d/50-neuron-core-dump.conf"
HOOK = "/opt/aws/neuron/bin/neuron-dump"
EXISTING_ENV = b'PATH="/usr/local/bin:/usr/bin:/bin"\r\n# keep me\nLANG=C.UTF-8'


def unit_dropin(unit):
    return "/etc/systemd/system/%s.d/50-neuron-core-dump.conf" % unit


@pytest.fixture
def booted(host):
    os.makedirs(host.path("/run/systemd/system"))
    return host


@pytest.fixture
def seeded(booted):
    booted.write(ENV, EXISTING_ENV)
    booted.write(HOOK, b"#!/bin/sh\nexit 0\n", 0o755)
    return booted


def test_enable_writes_every_default_target(seeded, commands, run_module):
    result, failed = run_module(core_dump, {"s3_prefix": "s3://bucket/%d-%c"})
    assert not failed and result["changed"]
    assert result["changed_targets"] == ["environment", "profile", "systemd_manager"]
    assert result["files"] == [seeded.path(ENV), seeded.path(PROFILE), seeded.path(MANAGER)]
    assert result["restart_required"] is True
    assert result["commands"] == ["systemctl daemon-reexec"]
    assert "systemctl daemon-reexec" in commands.calls
    assert result["values"] == {LOCAL: contract.DEFAULT_LOCAL_DIR, S3: "s3://bucket/%d-%c"}
    assert result["manager_percent_escaped"] is True
    env = seeded.read(ENV)
    assert env.endswith(EXISTING_ENV) and etc_environment.managed_values(env) == result["values"]
    assert b"export NEURON_RT_S3_CORE_DUMP_PREFIX='s3://bucket/%d-%c'" in seeded.read(PROFILE)
    assert b"dt-%%d-cid-%%c" in seeded.read(MANAGER)
    assert os.stat(seeded.path(PROFILE)).st_mode & 0o777 == 0o644


def test_second_run_changes_nothing(seeded, commands, run_module):
    run_module(core_dump, {"units": ["train"]})
    before = seeded.snapshot()
    commands.calls.clear()
    result, failed = run_module(core_dump, {"units": ["train"]})
    assert not failed and not result["changed"]
    assert result["files"] == [] and result["commands"] == [] and result["diff"] == []
    assert result["restart_required"] is False
    assert seeded.snapshot() == before
    assert commands.calls == ["systemctl --version"]


def test_check_mode_writes_nothing_and_predicts(seeded, commands, run_module):
    before = seeded.snapshot()
    predicted, failed = run_module(core_dump, {"state": "disabled", "hook": "disable", "units": ["a"]}, check_mode=True)
    assert not failed and predicted["changed"]
    assert seeded.snapshot() == before
    assert "systemctl daemon-reexec" not in commands.calls
    real, _failed = run_module(core_dump, {"state": "disabled", "hook": "disable", "units": ["a"]})
    for key in ("changed", "changed_targets", "files", "restart_required", "commands", "diff"):
        assert predicted[key] == real[key], key
    assert real["changed_targets"] == ["environment", "profile", "systemd_manager", "units", "hook"]


def test_diff_has_one_entry_per_file_with_headers(seeded, commands, run_module):
    result, _failed = run_module(core_dump, {"state": "disabled", "hook": "disable"}, diff=True)
    diffs = {d["after_header"]: d for d in result["diff"]}
    env = diffs[seeded.path(ENV)]
    assert env["before_header"] == seeded.path(ENV)
    assert env["before"] == EXISTING_ENV.decode()
    assert 'NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=""' in env["after"]
    profile = diffs[seeded.path(PROFILE)]
    assert profile["before_header"] == seeded.path(PROFILE) + " (absent)" and profile["before"] == ""
    hook_diff = diffs[seeded.path(HOOK) + " (mode)"]
    assert (hook_diff["before"], hook_diff["after"]) == ("mode 0755\n", "mode 0644\n")
    assert len(result["diff"]) == 4


def test_disabled_then_absent_restores_vendor_defaults(seeded, commands, run_module):
    original = seeded.snapshot()
    run_module(core_dump, {"state": "enabled", "units": ["a", "b.service"]})
    run_module(core_dump, {"state": "disabled", "hook": "disable", "units": ["a"]})
    assert os.stat(seeded.path(HOOK)).st_mode & 0o777 == 0o644
    result, failed = run_module(core_dump, {"state": "absent"})
    assert not failed and result["changed"]
    # b.service's drop-in was not in units, but absent removes every managed drop-in.
    assert seeded.path(unit_dropin("b.service")) in result["files"]
    assert "hook" in result["changed_targets"]
    after = seeded.snapshot()
    hook_state = os.path.relpath(seeded.path("/var/lib/neuron-core-dump/core-dump-hook-state.json"), seeded.root)
    assert hook_state not in after
    assert after == original
    assert not os.path.exists(seeded.path("/etc/systemd/system/a.service.d"))
    again, _failed = run_module(core_dump, {"state": "absent"})
    assert not again["changed"]


def test_enabled_restores_the_hook(seeded, commands, run_module):
    run_module(core_dump, {"state": "disabled", "hook": "disable"})
    result, _failed = run_module(core_dump, {"state": "enabled"})
    assert "hook" in result["changed_targets"]
    assert os.stat(seeded.path(HOOK)).st_mode & 0o777 == 0o755


def test_disabled_keep_leaves_the_hook(seeded, commands, run_module):
    result, _failed = run_module(core_dump, {"state": "disabled"})
    assert "hook" not in result["changed_targets"]
    assert os.stat(seeded.path(HOOK)).st_mode & 0o777 == 0o755


def test_units_only_reload(seeded, commands, run_module):
    result, _failed = run_module(core_dump, {"targets": ["units"], "units": ["a"]})
    assert result["commands"] == ["systemctl daemon-reload"]
    assert result["changed_targets"] == ["units"]
    data = seeded.read(unit_dropin("a.service")).decode()
    assert "[Service]" in data and 'Environment="NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=' in data


def test_no_systemd_skips_apply_and_says_so(host, commands, run_module):
    result, failed = run_module(core_dump, {})
    assert not failed and result["changed"]
    assert result["commands"] == [] and "not the running init" in result["apply_skipped"]
    assert "systemctl daemon-reexec" not in commands.calls


def test_apply_false(seeded, commands, run_module):
    result, _failed = run_module(core_dump, {"apply": False})
    assert result["commands"] == [] and result["apply_skipped"] is None


def test_systemctl_failure_fails(seeded, commands, run_module):
    commands.respond(["systemctl", "daemon-reexec"], rc=1, err="Access denied")
    result, failed = run_module(core_dump, {})
    assert failed and "daemon-reexec failed" in result["msg"] and "Access denied" in result["msg"]


def test_old_systemd_gets_unescaped_default_environment(seeded, commands, run_module):
    commands.respond(["systemctl", "--version"], out="systemd 239 (239-78.el8)\n")
    result, _failed = run_module(core_dump, {})
    assert result["manager_percent_escaped"] is False
    assert b"dt-%d-cid-%c" in seeded.read(MANAGER)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"local_dir": "relative/%d-%c"}, "local_dir: must be an absolute path"),
        ({"local_dir": "/v/%d"}, "local_dir: must contain %c"),
        ({"local_dir": "/v/%d-%c-%z"}, "the runtime would write a literal '%' and drop the 'z'"),
        ({"local_dir": "/v/$HOME/%d-%c"}, "local_dir: unsafe characters: dollar sign"),
        ({"s3_prefix": "https://bucket/%d-%c"}, "s3_prefix: must start with 's3://'"),
        ({"s3_prefix": "s3://Bucket/%d-%c"}, "s3_prefix: bucket name 'Bucket'"),
        ({"units": ["x.socket"]}, "units: 'x.socket' is not a .service unit"),
        ({"targets": ["units"]}, "targets: 'units' needs at least one service"),
        ({"targets": ["profile"], "units": ["a"]}, "units: given, but targets does not include 'units'"),
        ({"hook": "disable"}, "hook: 'disable' is only allowed with state=disabled"),
    ],
)
def test_invalid_arguments_write_nothing(seeded, commands, run_module, args, fragment):
    before = seeded.snapshot()
    result, failed = run_module(core_dump, args)
    assert failed and fragment in result["msg"], result["msg"]
    assert result["msg"].startswith("invalid arguments, nothing written: ")
    assert seeded.snapshot() == before


def test_every_problem_is_reported_at_once(seeded, commands, run_module):
    result, failed = run_module(core_dump, {"local_dir": "x", "s3_prefix": "gs://b"})
    assert failed and len(result["problems"]) >= 3


def test_allow_non_unique(seeded, commands, run_module):
    result, failed = run_module(core_dump, {"local_dir": "/var/dumps", "allow_non_unique": True})
    assert not failed and result["values"][LOCAL] == "/var/dumps"


def test_tmp_local_dir_warns(seeded, commands, run_module, monkeypatch):
    warnings = []
    monkeypatch.setattr(core_dump.AnsibleModule, "warn", lambda _self, text: warnings.append(text))
    run_module(core_dump, {"local_dir": "/tmp/dumps/%d-%c"})
    assert any("world-writable" in w for w in warnings)


def test_foreign_lines_for_our_keys_are_replaced(seeded, commands, run_module):
    seeded.write(ENV, b"A=1\nNEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=/elsewhere\nB=2\n")
    run_module(core_dump, {"state": "disabled"})
    data = seeded.read(ENV)
    assert b"/elsewhere" not in data and data.endswith(b"A=1\nB=2\n")
    assert etc_environment.parse(data)[LOCAL] == ""


# --- the rule between local_dir and s3_prefix (issue 7: "refuse the losing configuration up front")

LOSING_PAIR = {"local_dir": "/var/lib/neuron-core-dump/dumps/%d-%c-%i-%p", "s3_prefix": "s3://bkt/neuron/dt-%d-cid-%c"}


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_s3_prefix_less_unique_than_local_dir_is_refused_and_nothing_changes(seeded, commands, run_module, check_mode):
    before = seeded.snapshot()
    result, failed = run_module(core_dump, LOSING_PAIR, check_mode=check_mode)
    assert failed
    assert result["msg"].startswith("invalid arguments, nothing written: ")
    assert "s3_prefix: must use every variable of local_dir" in result["msg"]
    assert "at least as unique as the local dir" in result["msg"] and "missing %i %p" in result["msg"]
    assert seeded.snapshot() == before
    assert commands.calls == []


def test_a_variable_only_in_s3_prefix_is_allowed(seeded, commands, run_module):
    """One local dir, several prefixes (per process): allowed and documented."""
    result, failed = run_module(core_dump, {"s3_prefix": "s3://bkt/neuron/dt-%d-cid-%c/pid-%p"})
    assert not failed, result.get("msg")
    assert result["values"][S3] == "s3://bkt/neuron/dt-%d-cid-%c/pid-%p"


def _uploader_config(host, **s3):
    host.write("/etc/neuron-core-dump/config.json", json.dumps({"s3": s3}))


def _warnings(monkeypatch):
    found = []
    monkeypatch.setattr(core_dump.AnsibleModule, "warn", lambda _self, text: found.append(text))
    return found


def test_a_prefix_the_uploader_would_refuse_warns(seeded, commands, run_module, monkeypatch):
    _uploader_config(seeded, allowed_buckets=["bkt"], allowed_prefixes=["s3://bkt/neuron/"])
    warnings = _warnings(monkeypatch)
    _result, failed = run_module(core_dump, {"s3_prefix": "s3://bkt/elsewhere/%d-%c"})
    assert not failed
    assert any("outside what the uploader may write to" in w and "s3://bkt/neuron/" in w for w in warnings), warnings


@pytest.mark.parametrize(
    "s3",
    [
        {"allowed_buckets": ["bkt"], "allowed_prefixes": ["s3://bkt/neuron/"]},
        {"allowed_buckets": [], "allowed_prefixes": []},
        None,  # no uploader config on this host
    ],
)
def test_a_prefix_the_uploader_allows_does_not_warn(seeded, commands, run_module, monkeypatch, s3):
    if s3 is not None:
        _uploader_config(seeded, **s3)
    warnings = _warnings(monkeypatch)
    _result, failed = run_module(core_dump, {"s3_prefix": "s3://bkt/neuron/dt-%d-cid-%c"})
    assert not failed and not [w for w in warnings if "uploader" in w]


def test_real_ansible_run_refuses_the_losing_pair_in_check_mode(tmp_path):
    """Through ansible-core itself (the real module transfer and argument handling)."""
    collections = os.path.join(REPO_ROOT, ".bed", "collections")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_LOCAL_TEMP=str(tmp_path))
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    args = " ".join("%s=%s" % item for item in LOSING_PAIR.items())
    proc = subprocess.run(
        ["ansible", "localhost", "-c", "local", "--check", "-m", "neuron_ops.core_dump.core_dump", "-a", args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "s3_prefix: must use every variable of local_dir" in proc.stdout, proc.stdout + proc.stderr
    assert '"changed": false' in proc.stdout


def test_a_local_dir_outside_the_dump_roots_warns(seeded, commands, run_module, monkeypatch):
    seeded.write("/etc/neuron-core-dump/config.json", json.dumps({"dump_roots": ["/var/lib/neuron-core-dump/dumps"]}))
    warnings = _warnings(monkeypatch)
    _result, failed = run_module(core_dump, {"local_dir": "/scratch/dumps/dt-%d-cid-%c"})
    assert not failed
    assert any("outside the uploader's dump_roots" in w for w in warnings), warnings
    warnings.clear()
    run_module(core_dump, {})  # the default local_dir is inside
    assert not [w for w in warnings if "dump_roots" in w]
