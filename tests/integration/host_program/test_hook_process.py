"""The hook as the runtime runs it: a real process, its exit status, time and files."""

import json
import os
import subprocess
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ncd_bed import INSTANCE_ID, NOBODY, SYSTEM_PYTHON, mode_of


def _gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().split()[2] == "Z"  # a zombie waiting for its reaper is dead too
    except FileNotFoundError:
        return True


def _records(path):
    return sorted(n for n in os.listdir(path) if "-ncd-" in n and n.endswith(".json"))


def _load(path, name):
    with open(os.path.join(path, name)) as handle:
        return json.load(handle)


def test_per_core_call_writes_record_and_enqueues(bed):
    dump = bed.dump_dir()
    proc, seconds = bed.run_hook(bed.runtime_argv(dump, pid=7, tid=8, log_id=3, device=2, core=5, prefix="s3://b/p"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    names = _records(dump)
    assert len(names) == 1
    name = names[0]
    assert name.startswith(INSTANCE_ID + "-ncd-core-pid-7-tid-8-lid-3-nd2-nc5-")
    record = _load(dump, name)
    assert record["schema"] == "neuron-core-dump/record/v1"
    assert record["kind"] == "core"
    assert record["flags"]["error-code"] == "1006"
    assert record["flags"]["s3-output-prefix"] == "s3://b/p"
    assert record["host"] == {"hostname": os.uname().nodename, "instance_id": INSTANCE_ID, "instance_id_source": "dmi"}
    assert record["env"] == {"NEURON_RT_LOG_LEVEL": "ERROR"}
    assert record["vendor"] == {"path": bed.vendor, "present": False, "ran": False}
    assert mode_of(dump) == 0o700
    assert mode_of(os.path.join(dump, name)) == 0o600
    entries = bed.incoming_entries()
    assert len(entries) == 1
    with open(os.path.join(bed.incoming, entries[0])) as handle:
        entry = json.load(handle)
    assert entry["dump_dir"] == dump
    assert entry["s3_prefix"] == "s3://b/p"
    assert entry["record"] == name
    assert seconds < 5


def test_runtime_generated_call_copies_the_file(bed, tmp_path):
    runtime_file = tmp_path / ("%s-nrt-pid-100.log" % INSTANCE_ID)
    runtime_file.write_text("nrt error tail\n")
    dump = bed.dump_dir()
    proc, _unused = bed.run_hook(bed.runtime_argv(dump, runtime_file=str(runtime_file)))
    assert proc.returncode == 0, proc.stderr
    copied = os.path.join(dump, runtime_file.name)
    with open(copied) as handle:
        assert handle.read() == "nrt error tail\n"
    assert mode_of(copied) == 0o600
    (name,) = _records(dump)
    assert "-ncd-runtime-pid-100-tid-100-lid-0-" in name and "-nd" not in name
    record = _load(dump, name)
    assert record["runtime_generated"]["copied_as"] == runtime_file.name


def test_runtime_generated_file_already_in_dump_dir_is_not_copied(bed):
    dump = bed.dump_dir()
    os.makedirs(dump, mode=0o700)
    inside = os.path.join(dump, INSTANCE_ID + "-nrt-pid-100.log")
    with open(inside, "w") as handle:
        handle.write("x")
    proc, _unused = bed.run_hook(bed.runtime_argv(dump, runtime_file=inside))
    assert proc.returncode == 0
    assert sorted(os.listdir(dump)) == sorted([os.path.basename(inside), *_records(dump)])
    assert _load(dump, _records(dump)[0])["runtime_generated"]["in_dump_dir"] is True


def test_runtime_generated_file_the_vendor_already_collected_is_kept_once(bed, tmp_path):
    runtime_file = tmp_path / ("%s-nrt-pid-100.log" % INSTANCE_ID)
    runtime_file.write_text("nrt error tail\n")
    dump = bed.dump_dir()
    os.makedirs(dump, mode=0o700)
    with open(os.path.join(dump, runtime_file.name), "w") as handle:  # the vendor's copy
        handle.write("nrt error tail\n")
    proc, _unused = bed.run_hook(bed.runtime_argv(dump, runtime_file=str(runtime_file)))
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(dump)) == sorted([runtime_file.name, *_records(dump)])
    assert _load(dump, _records(dump)[0])["runtime_generated"]["already_present"] == runtime_file.name


def test_runtime_generated_file_never_overwrites_a_different_one(bed, tmp_path):
    runtime_file = tmp_path / ("%s-nrt-pid-100.log" % INSTANCE_ID)
    runtime_file.write_text("new tail\n")
    dump = bed.dump_dir()
    os.makedirs(dump, mode=0o700)
    with open(os.path.join(dump, runtime_file.name), "w") as handle:
        handle.write("something else\n")
    proc, _unused = bed.run_hook(bed.runtime_argv(dump, runtime_file=str(runtime_file)))
    assert proc.returncode == 0, proc.stderr
    copied_as = _load(dump, _records(dump)[0])["runtime_generated"]["copied_as"]
    assert copied_as.startswith(runtime_file.name + ".")
    with open(os.path.join(dump, runtime_file.name)) as handle:
        assert handle.read() == "something else\n"
    with open(os.path.join(dump, copied_as)) as handle:
        assert handle.read() == "new tail\n"


def test_vendor_is_chained_with_the_same_argv(bed):
    out = os.path.join(bed.base, "vendor-argv.json")
    bed.write_vendor(
        "#!%s\nimport json, os, sys\njson.dump({'argv': sys.argv[1:], 'uid': os.getuid()}, open(%r, 'w'))\n"
        % (SYSTEM_PYTHON, out)
    )
    argv = bed.runtime_argv(bed.dump_dir(), device=1, core=3, prefix="s3://bkt/x")
    proc, _unused = bed.run_hook(argv)
    assert proc.returncode == 0
    with open(out) as handle:
        assert json.load(handle)["argv"] == argv
    (name,) = _records(bed.dump_dir())
    vendor = _load(bed.dump_dir(), name)["vendor"]
    assert vendor["ran"] is True and vendor["exit_code"] == 0


def test_vendor_sees_a_private_dump_dir_made_by_the_hook(bed):
    """The dir exists (0700) before the vendor runs, so the vendor's umask cannot open it up."""
    out = os.path.join(bed.base, "vendor-saw")
    bed.write_vendor('#!/bin/sh\nstat -c %%a "%s" > %s\n' % (bed.dump_dir(), out))
    bed.run_hook(bed.runtime_argv(bed.dump_dir()))
    with open(out) as handle:
        assert handle.read().strip() == "700"


def test_hanging_vendor_is_killed_and_the_hook_exits_0_within_budget(bed):
    pid_file = os.path.join(bed.base, "vendor.pid")
    bed.write_vendor("#!/bin/sh\necho $$ > %s\nsleep 60 &\nwait\n" % pid_file)
    bed.write_config({"hook": {"vendor_timeout_seconds": 0.5, "budget_seconds": 2}})
    proc, seconds = bed.run_hook(bed.runtime_argv(bed.dump_dir()))
    assert proc.returncode == 0
    assert seconds < 30  # the vendor's sleep 60 was cut short (the record and the message below say how)
    with open(pid_file) as handle:
        vendor_pid = int(handle.read())
    time.sleep(0.1)
    assert _gone(vendor_pid)
    (name,) = _records(bed.dump_dir())
    record = _load(bed.dump_dir(), name)
    assert record["vendor"]["timed_out"] is True
    assert "killed after 0.5s" in proc.stderr.decode()
    assert "killed after 0.5s" in bed.log_text()


def test_watchdog_ends_a_stuck_hook_with_status_0(bed, lib_dir):
    code = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from neuron_core_dump import hook\n"
        "arm = hook._install_watchdog(); arm(0.3)\n"
        "try:\n    time.sleep(30)\nfinally:\n    sys.exit(5)\n"
    ) % lib_dir
    started = time.monotonic()
    proc = subprocess.run([SYSTEM_PYTHON, "-IS", "-c", code], capture_output=True, timeout=20, check=False)
    assert proc.returncode == 0
    assert time.monotonic() - started < 5


def test_broken_config_logs_and_still_exits_0_with_the_built_in_defaults(bed):
    with open(bed.config_path, "w") as handle:
        handle.write("{not json")
    dump = bed.dump_dir()
    proc, seconds = bed.run_hook(bed.runtime_argv(dump))
    assert proc.returncode == 0
    assert b"config" in proc.stderr and b"invalid" in proc.stderr
    # The built-in defaults apply: the bed's dump root is not one of theirs and
    # hook.write_outside_roots is false by default, so the hook says so and writes nothing
    # there (on a host, where the dir is below the default roots, the record is written).
    assert b"write_outside_roots is false" in proc.stderr
    assert seconds < 5


def test_invalid_value_in_config_is_named(bed):
    bed.write_config({"hook": {"dir_mode": "0755x"}})
    proc, _unused = bed.run_hook(bed.runtime_argv(bed.dump_dir()))
    assert proc.returncode == 0
    assert b"hook.dir_mode" in proc.stderr


def test_no_flags_at_all_still_exits_0(bed):
    proc, _unused = bed.run_hook([])
    assert proc.returncode == 0
    # the runtime's own default location is used when it passes no directory
    dumps = os.listdir(bed.vendor_root)
    assert len(dumps) == 1 and dumps[0].startswith("dt-") and dumps[0].endswith("-cid-none")


def test_missing_package_falls_back_to_the_vendor(bed, tmp_path):
    out = tmp_path / "vendor-ran"
    bed.write_vendor('#!/bin/sh\necho "$@" > %s\n' % out)
    broken = os.path.join(bed.base, "bin", "broken-hook")
    with open(bed.hook) as handle:
        text = handle.read()
    with open(broken, "w") as handle:
        handle.write(text.replace("LIB_DIR = ", "LIB_DIR = '/nonexistent' #"))
    os.chmod(broken, 0o755)
    proc, _unused = bed.run_hook(["--pid", "1"], hook=broken)
    assert proc.returncode == 0
    assert out.read_text().strip() == "--pid 1"


def test_hook_runs_as_an_unprivileged_workload_user(bed):
    dump = bed.dump_dir("dt-user-cid-0")
    proc, _unused = bed.run_hook(bed.runtime_argv(dump), user=NOBODY)
    assert proc.returncode == 0, proc.stderr
    info = os.stat(dump)
    assert info.st_uid == NOBODY and mode_of(dump) == 0o700
    (name,) = _records(dump)
    assert os.stat(os.path.join(dump, name)).st_uid == NOBODY
    (entry,) = bed.incoming_entries()
    assert os.stat(os.path.join(bed.incoming, entry)).st_uid == NOBODY


def test_other_users_cannot_read_a_users_dump(bed):
    dump = bed.dump_dir("dt-private-cid-0")
    bed.run_hook(bed.runtime_argv(dump))  # written by root: the workload here
    probe = subprocess.run(
        ["/bin/ls", dump], preexec_fn=lambda: os.setuid(NOBODY), capture_output=True, timeout=10, check=False
    )
    assert probe.returncode != 0 and b"Permission denied" in probe.stderr


@pytest.mark.slow
def test_64_ranks_times_3_calls_into_one_dir_never_collide(bed, tmp_path):
    dump = bed.dump_dir()
    runtime_file = tmp_path / "rt.log"
    runtime_file.write_text("tail")
    failures = []

    def rank(number):
        calls = [
            bed.runtime_argv(dump, pid=1000 + number, tid=1000 + number, log_id=0, device=number // 4, core=0),
            bed.runtime_argv(dump, pid=1000 + number, tid=1000 + number, log_id=1, device=number // 4, core=1),
            bed.runtime_argv(dump, pid=1000 + number, tid=1000 + number, log_id=2, runtime_file=str(runtime_file)),
        ]
        for argv in calls:
            proc, _unused = bed.run_hook(argv, timeout=120)
            if proc.returncode != 0 or proc.stderr:
                failures.append((number, proc.returncode, proc.stderr))

    threads = [threading.Thread(target=rank, args=(n,)) for n in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert not failures
    records = _records(dump)
    assert len(records) == 192
    kinds = {"core": 0, "runtime": 0}
    for name in records:
        kinds[_load(dump, name)["kind"]] += 1  # every record is complete, valid JSON
    assert kinds == {"core": 128, "runtime": 64}
    # 64 calls brought the same runtime file (same name, same bytes): kept once, never torn
    copies = [n for n in os.listdir(dump) if n.startswith("rt.log")]
    assert copies == ["rt.log"]
    with open(os.path.join(dump, "rt.log")) as handle:
        assert handle.read() == "tail"
    assert not [n for n in os.listdir(dump) if n.startswith(".")]
    assert len(bed.incoming_entries()) == 192


@pytest.mark.parametrize("version", ["3.9", "3.13"])
def test_hook_runs_on_other_python_versions(bed, version):
    """AL2023 ships 3.9, Debian 13 ships 3.13: the hook path must work on both, vendor guard included
    (the vendor's leftover child ends with the hook)."""
    python = os.path.expanduser("~/.pyenv/versions")
    candidates = sorted(n for n in os.listdir(python) if n.startswith(version + ".")) if os.path.isdir(python) else []
    if not candidates:
        pytest.skip("python %s not available here" % version)
    interpreter = os.path.join(python, candidates[-1], "bin", "python" + version)
    pid_file = os.path.join(bed.base, "leftover.pid")
    bed.write_vendor("#!/bin/sh\nsleep 30 &\necho $! > %s\n" % pid_file)
    dump = bed.dump_dir("dt-py%s-cid-0" % version)
    proc = subprocess.run(
        [interpreter, "-IS", bed.hook, *bed.runtime_argv(dump, prefix="s3://b/p")],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0 and proc.stderr == b""
    assert len(_records(dump)) == 1
    with open(pid_file) as handle:
        leftover = int(handle.read())
    deadline = time.monotonic() + 2
    while not _gone(leftover) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone(leftover)


_FLAG = st.sampled_from(["--pid", "--local-output-dir", "--runtime-generated", "--s3-output-prefix", "--x", "--"])
_TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40)
_HUGE = st.integers(0, 120000).map(lambda n: "Z" * n)  # the kernel caps one argv word at 128 KiB
_SUBPROCESS_ARGV = st.lists(st.one_of(_FLAG, _TEXT, _HUGE), max_size=12)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=_SUBPROCESS_ARGV)
def test_fuzzed_argv_as_a_real_process_exits_0(bed, argv):
    bed.write_config({"hook": {"write_outside_roots": False}})
    proc, seconds = bed.run_hook(argv, timeout=30)
    assert proc.returncode == 0
    assert b"hook failed" not in proc.stderr  # handled refusals only, no unexpected exception
    assert seconds < 5
