from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import tempfile

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import installed_hook

OURS = b'#!/usr/bin/python3\n"""hook"""\nNEURON_CORE_DUMP_HOOK_VERSION = "1.2.3"\n'


@pytest.fixture
def tmp_path():
    """Like pytest's tmp_path, but every user can search it (pytest's base is 0700)."""
    import pathlib

    path = tempfile.mkdtemp(prefix="hooktest-", dir="/tmp")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path)


def make(tmp_path, data, mode=0o755, name="neuron-dump"):
    path = tmp_path / "opt" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    os.chmod(path.parent, 0o755)
    return str(path)


def test_identify_ours(tmp_path):
    path = make(tmp_path, OURS)
    info = installed_hook.identify(path)
    assert info["kind"] == "ours" and info["version"] == "1.2.3"
    assert info["sha256"] == hashlib.sha256(OURS).hexdigest()
    assert info["mode"] == "0755"


def test_identify_vendor(tmp_path):
    info = installed_hook.identify(make(tmp_path, b"#!/bin/sh\nexec true\n"))
    assert info["kind"] == "vendor" and info["version"] is None and info["sha256"]


def test_version_mark_only_counts_in_the_first_4k(tmp_path):
    info = installed_hook.identify(
        make(tmp_path, b"#!/bin/sh\n" + b"#" * 5000 + b'\nNEURON_CORE_DUMP_HOOK_VERSION = "1.0.0"\n')
    )
    assert info["kind"] == "vendor"


def test_identify_missing(tmp_path):
    assert installed_hook.identify(str(tmp_path / "nope"))["kind"] == "missing"


def test_identify_through_symlink(tmp_path):
    real = make(tmp_path, OURS, name="real")
    link = tmp_path / "opt" / "neuron-dump"
    link.symlink_to(real)
    info = installed_hook.identify(str(link))
    assert info["kind"] == "ours" and info["symlink_to"] == real


@pytest.mark.parametrize(
    ("mode", "root", "anyone"),
    [(0o755, True, True), (0o750, True, False), (0o700, True, False), (0o644, False, False), (0o701, True, True)],
)
def test_mode_bits(tmp_path, mode, root, anyone):
    path = make(tmp_path, b"#!/bin/sh\n", mode)
    assert installed_hook.mode_bits_allow_exec(path, 0, [0])[0] is root
    assert installed_hook.mode_bits_allow_exec(path, None, [])[0] is anyone


def test_group_member_may_execute(tmp_path):
    path = make(tmp_path, b"#!/bin/sh\n", 0o750)
    gid = os.stat(path).st_gid
    assert installed_hook.mode_bits_allow_exec(path, 12345, [gid])[0]
    assert not installed_hook.mode_bits_allow_exec(path, 12345, [gid + 1])[0]


def test_parent_directory_blocks(tmp_path):
    path = make(tmp_path, b"#!/bin/sh\n", 0o755)
    os.chmod(os.path.dirname(path), 0o700)
    allowed, reason = installed_hook.mode_bits_allow_exec(path, None, [])
    assert not allowed and "no search (x) permission on directory" in reason


def test_missing_hook(tmp_path):
    (tmp_path / "opt").mkdir()
    allowed, reason = installed_hook.mode_bits_allow_exec(str(tmp_path / "opt" / "neuron-dump"), 0, [0])
    assert not allowed and reason == "hook is missing"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch user")
def test_real_access_check_as_another_user(tmp_path):
    user = pwd.getpwnam("nobody")
    path = make(tmp_path, b"#!/bin/sh\n", 0o755)
    assert installed_hook.verify_as_user(path, user.pw_uid, user.pw_gid, [user.pw_gid]) is True
    os.chmod(path, 0o744)
    assert installed_hook.verify_as_user(path, user.pw_uid, user.pw_gid, [user.pw_gid]) is False
    report = installed_hook.executable_by(path, "nobody")
    assert report["workload_user"]["executable"] is False and report["workload_user"]["verified"] is True
    assert report["root"]["executable"] is True and report["any_user"]["executable"] is False


def test_executable_by_unknown_user(tmp_path):
    path = make(tmp_path, b"#!/bin/sh\n")
    report = installed_hook.executable_by(path, "no-such-user-xyz")
    assert report["workload_user"] == {
        "name": "no-such-user-xyz",
        "executable": False,
        "reason": "no such user",
        "verified": False,
    }


def test_disable_then_restore_exactly(tmp_path):
    path = make(tmp_path, b"#!/bin/sh\n", 0o751)
    state = str(tmp_path / "state" / "hook.json")
    change = installed_hook.plan_disable(path, state)
    assert change.changed and change.after_mode == 0o640
    assert change.diff()["before"] == "mode 0751\n" and change.diff()["after"] == "mode 0640\n"
    change.apply()
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert installed_hook.read_state(state)["original_mode"] == "0751"
    # Disabling again is a no-op and keeps the record.
    again = installed_hook.plan_disable(path, state)
    assert not again.changed
    again.apply()
    assert installed_hook.read_state(state)["original_mode"] == "0751"
    restore = installed_hook.plan_restore(path, state)
    assert restore.changed and restore.after_mode == 0o751
    restore.apply()
    assert os.stat(path).st_mode & 0o777 == 0o751
    assert installed_hook.read_state(state) is None
    assert installed_hook.plan_restore(path, state) is None


def test_restore_leaves_a_replaced_hook_alone(tmp_path):
    path = make(tmp_path, b"#!/bin/sh\n", 0o755)
    state = str(tmp_path / "hook.json")
    installed_hook.plan_disable(path, state).apply()
    os.chmod(path, 0o700)  # e.g. a package upgrade reinstalled it
    restore = installed_hook.plan_restore(path, state)
    assert not restore.changed and "left as is" in restore.note
    restore.apply()
    assert os.stat(path).st_mode & 0o777 == 0o700 and installed_hook.read_state(state) is None


def test_restore_with_hook_gone_drops_the_record(tmp_path):
    path = make(tmp_path, b"#!/bin/sh\n", 0o755)
    state = str(tmp_path / "hook.json")
    installed_hook.plan_disable(path, state).apply()
    os.unlink(path)
    restore = installed_hook.plan_restore(path, state)
    assert not restore.changed and "missing" in restore.note
    restore.apply()
    assert installed_hook.read_state(state) is None


def test_disable_missing_hook(tmp_path):
    assert installed_hook.plan_disable(str(tmp_path / "nope"), str(tmp_path / "s.json")) is None


def test_disable_already_non_executable_records_nothing(tmp_path):
    path = make(tmp_path, b"#!/bin/sh\n", 0o644)
    state = str(tmp_path / "s.json")
    change = installed_hook.plan_disable(path, state)
    assert not change.changed
    change.apply()
    assert installed_hook.read_state(state) is None


def test_corrupt_state_is_ignored(tmp_path):
    state = tmp_path / "s.json"
    state.write_bytes(b"{not json")
    assert installed_hook.read_state(str(state)) is None
