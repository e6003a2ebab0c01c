from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract, paths, procscan

LOCAL = contract.LOCAL_DIR_VAR
S3 = contract.S3_PREFIX_VAR

MAPS_NRT = (
    "7f00-7f10 r--p 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
    "7f10-7f20 r-xp 00000000 08:01 456 /opt/aws/neuron/lib/libnrt.so.1\n"
    "7f20-7f30 r-xp 00001000 08:01 456 /opt/aws/neuron/lib/libnrt.so.1\n"
    "7f30-7f40 rw-p 00000000 00:00 0 \n"
    "7ffd-7ffe rw-p 00000000 00:00 0 [stack]\n"
)
MAPS_PLAIN = "7f00-7f10 r--p 00000000 08:01 123 /usr/bin/python3.11\n"


def fake_proc(root, pid, maps, environ=None, comm="python3", cgroup="0::/system.slice/train.service\n", mnt="mnt:[1]"):
    base = root / str(pid)
    (base / "ns").mkdir(parents=True)
    (base / "maps").write_text(maps)
    (base / "comm").write_text(comm + "\n")
    (base / "cgroup").write_text(cgroup)
    os.symlink(mnt, base / "ns" / "mnt")
    if environ is not None:
        (base / "environ").write_bytes(
            b"\0".join(b"%s=%s" % (k.encode(), v.encode()) for k, v in environ.items()) + b"\0"
        )
    return base


@pytest.fixture
def proc(tmp_path, monkeypatch):
    root = tmp_path / "proc"
    (root / "self" / "ns").mkdir(parents=True)
    os.symlink("mnt:[1]", root / "self" / "ns" / "mnt")
    monkeypatch.setattr(paths, "PROC_ROOT", str(root))
    return root


def test_maps_runtime():
    assert procscan.maps_runtime(MAPS_NRT) == ["/opt/aws/neuron/lib/libnrt.so.1"]
    assert procscan.maps_runtime(MAPS_PLAIN) == []
    deleted = "7f10-7f20 r-xp 0 08:01 456 /opt/my dir/libnrt.so.2.31 (deleted)\n"
    assert procscan.maps_runtime(deleted) == ["/opt/my dir/libnrt.so.2.31"]
    assert procscan.maps_runtime("7f10-7f20 r-xp 0 08:01 456 /x/notlibnrt.so\n") == []


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("0::/system.slice/train.service\n", "train.service"),
        ("0::/user.slice/user-1000.slice/session-3.scope\n", "session-3.scope"),
        ("0::/system.slice/vllm.service/worker\n", "vllm.service"),
        ("12:pids:/system.slice/a.service\n1:name=systemd:/system.slice/a.service\n", "a.service"),
        ("0::/\n", None),
    ],
)
def test_unit_from_cgroup(text, unit):
    assert procscan.unit_from_cgroup(text) == unit


def test_parse_environ():
    assert procscan.parse_environ(b"A=1\0B=x=y\0C=\0junk\0") == {"A": "1", "B": "x=y", "C": ""}


def test_scan_fake_tree(proc):
    fake_proc(proc, 10, MAPS_NRT, {LOCAL: "/old/%d-%c", "OTHER": "1"})
    fake_proc(proc, 11, MAPS_PLAIN, {LOCAL: "x"})
    fake_proc(proc, 12, MAPS_NRT, {}, cgroup="0::/system.slice/docker-abc.scope\n", mnt="mnt:[2]")
    base = fake_proc(proc, 13, MAPS_NRT)  # environ unreadable (missing here: treated as exited)
    (base / "environ").mkdir()  # reading a directory raises IsADirectoryError: an OSError, "unreadable"
    (proc / "not-a-pid").mkdir()
    found, stats = procscan.scan()
    assert stats == {"scanned": 4, "runtime_processes": 3, "unreadable": 1}
    by_pid = {p["pid"]: p for p in found}
    assert by_pid[10]["env"] == {LOCAL: "/old/%d-%c", S3: None}
    assert by_pid[10]["unit"] == "train.service" and by_pid[10]["comm"] == "python3"
    assert by_pid[10]["libraries"] == ["/opt/aws/neuron/lib/libnrt.so.1"]
    assert by_pid[12]["foreign_namespace"] and by_pid[12]["unit"] == "docker-abc.scope"
    assert by_pid[13]["env"] is None and "cannot read environ" in by_pid[13]["error"]


def test_scan_tolerates_processes_that_exit(proc):
    (proc / "20").mkdir()  # no maps: gone between listdir and open
    assert procscan.scan() == ([], {"scanned": 1, "runtime_processes": 0, "unreadable": 0})


def test_scan_missing_root(tmp_path):
    assert procscan.scan(str(tmp_path / "none")) == ([], {"scanned": 0, "runtime_processes": 0, "unreadable": 0})


CHILD = """
import mmap, sys, time
with open(sys.argv[1], "rb") as handle:
    mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    print("ready", flush=True)
    time.sleep(60)
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_real_process_is_found(tmp_path):
    library = tmp_path / "libnrt.so.test"
    library.write_bytes(b"\0" * 4096)
    env = dict(os.environ)
    env[LOCAL] = ""
    env.pop(S3, None)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(library)], env=env, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == b"ready"
        deadline = time.time() + 10
        while True:
            found, _stats = procscan.scan("/proc")
            mine = [p for p in found if p["pid"] == child.pid]
            if mine or time.time() > deadline:
                break
            time.sleep(0.1)
        assert mine, "child %d not found" % child.pid
        assert mine[0]["libraries"] == [str(library)]
        assert mine[0]["env"] == {LOCAL: "", S3: None}
        assert not mine[0]["foreign_namespace"]
    finally:
        child.kill()
        child.wait()
