"""The runtime stand-in (tests/bed/fake_nrt.py) against docs/runtime-contract.md section 2.

Real processes only: fake_nrt runs as a subprocess with an explicit environment,
and runs real hooks (the fixture vendor neuron-dump, or a tiny recording hook).
FAKE_NRT_PYTHON picks the interpreter that runs fake_nrt (default: this one), so the
oracle can be checked on every Python the test hosts have (3.9-3.13).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
FAKE_NRT = REPO / "tests" / "bed" / "fake_nrt.py"
FIXTURE_BIN = REPO / "tests" / "bed" / "fixtures" / "aws-neuronx-tools" / "bin"
DEFAULT_ROOT = Path("/tmp/neuron-core-dump")
ZERO_CLUSTER = "0" * 16
EPOCH = 1700000000  # 2023-11-14 22:13:20 UTC
EPOCH_COMPACT = "20231114-221320"
IID = "i-0123456789abcdef0"
PYTHON = os.environ.get("FAKE_NRT_PYTHON", sys.executable)
RECORDING_HOOK = '#!/bin/sh\nprintf "%s\\n" "$*" >> "{record}"\n'


def install_fixture(directory: Path, name: str = "neuron-dump", version: str = "2.30.10.0") -> Path:
    """Copy a fixture vendor program with @VERSION@ replaced, as the package build does."""
    target = directory / f"{name}-{version}"
    target.write_text((FIXTURE_BIN / name).read_text(encoding="utf-8").replace("@VERSION@", version), "utf-8")
    target.chmod(0o755)
    return target


def write_hook(path: Path, text: str, mode: int = 0o755) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.fixture
def recorder(tmp_path):
    """A hook that only appends its argv to a file, to prove whether it ran."""
    record = tmp_path / "hook-calls.txt"
    hook = write_hook(tmp_path / "recording-hook", RECORDING_HOOK.format(record=record))
    return hook, record


def make_env(**variables) -> dict:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TZ": "UTC"}
    env.update(variables)
    return env


def run_fake(tmp_path: Path, args, env, expect_rc: int = 0, timeout: float = 15) -> dict:
    report = tmp_path / "report.json"
    command = [PYTHON, str(FAKE_NRT), *map(str, args), "--report", str(report)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == expect_rc, done.stderr
    return json.loads(report.read_text(encoding="utf-8"))


def only_rank(report: dict) -> dict:
    assert len(report["ranks"]) == 1
    return report["ranks"][0]


def flag_value(argv, flag):
    return argv[argv.index(flag) + 1]


# --- gate and defaults ------------------------------------------------------------------


@pytest.fixture
def default_dump_dir():
    """(epoch, planned dir) under the fixed, shared default root; removes exactly what the test created.

    A per-run epoch in 2000-2009 gives each run its own dt-... directory, so concurrent
    runs of this suite (or a real dump from this day) never collide with it.
    """
    epoch = 946684800 + (os.getpid() * 7919 + time.time_ns()) % (10 * 365 * 86400)
    planned = DEFAULT_ROOT / f"dt-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(epoch))}-cid-{ZERO_CLUSTER}"
    root_existed = DEFAULT_ROOT.exists()
    assert not planned.exists(), f"{planned} is left over from another run"
    yield epoch, planned
    shutil.rmtree(planned, ignore_errors=True)
    if not root_existed:
        with contextlib.suppress(OSError):  # not empty: another run is using it
            DEFAULT_ROOT.rmdir()


def test_unset_env_dumps_into_the_default_directory(tmp_path, default_dump_dir):
    epoch, default_dump_dir = default_dump_dir
    hook = install_fixture(tmp_path)
    env = make_env(FIXTURE_NEURON_DUMP_BYTES="512")

    report = run_fake(tmp_path, ["--hook", hook, "--epoch", epoch, "--instance-id", IID], env)

    gate = report["gate"]
    assert gate["enabled"] is True
    assert gate["local_template"] == "/tmp/neuron-core-dump/dt-%d-cid-%c"
    assert gate["s3_template"] is None
    rank = only_rank(report)
    pid = rank["pid"]
    assert [call["kind"] for call in rank["calls"]] == ["core", "runtime-generated"]
    for call in rank["calls"]:
        assert call["local_output_dir"] == str(default_dump_dir)
        assert "--s3-output-prefix" not in call["argv"]
        assert call["exit_status"] == 0
    core_file = default_dump_dir / f"{IID}-nd0-nc0-pid-{pid}-tid-{pid}-lid-0"
    assert b"aws-neuronx-tools 2.30.10.0" in core_file.read_bytes()
    assert "NRT_EXEC_OOB" in (default_dump_dir / f"{IID}-nrt-pid-{pid}.log").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "variables",
    [
        pytest.param({"NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY": "", "NEURON_RT_S3_CORE_DUMP_PREFIX": ""}, id="both-empty"),
        pytest.param({"NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY": ""}, id="local-empty-s3-unset"),
    ],
)
def test_empty_destinations_disable_dumps(tmp_path, recorder, variables):
    hook, record = recorder

    report = run_fake(tmp_path, ["--hook", hook], make_env(**variables))

    assert report["gate"]["enabled"] is False
    assert "both empty" in report["gate"]["reason"]
    assert only_rank(report)["calls"] == []
    assert not record.exists()


@pytest.mark.parametrize("problem", ["missing", "not-executable"])
def test_hook_that_cannot_be_executed_is_never_called(tmp_path, recorder, problem):
    hook, record = recorder
    if problem == "missing":
        hook.unlink()
    else:
        hook.chmod(0o644)
    env = make_env(NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=str(tmp_path / "dumps"))

    report = run_fake(tmp_path, ["--hook", hook], env)

    assert report["gate"]["enabled"] is False
    expected = "does not exist" if problem == "missing" else "not executable"
    assert expected in report["gate"]["reason"]
    assert only_rank(report)["calls"] == []
    assert not record.exists()
    assert not (tmp_path / "dumps").exists()


def test_s3_prefix_is_passed_only_when_set_and_shifts_later_flags(tmp_path, recorder):
    hook, record = recorder
    local = tmp_path / "dumps"
    env = make_env(
        NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=f"{local}/%d-%c",
        NEURON_RT_S3_CORE_DUMP_PREFIX="s3://bucket/cores/%d-%c/%p",
    )

    report = run_fake(tmp_path, ["--hook", hook, "--epoch", EPOCH, "--instance-id", IID], env)

    rank = only_rank(report)
    pid, dump_dir = rank["pid"], f"{local}/{EPOCH_COMPACT}-{ZERO_CLUSTER}"
    s3_prefix = f"s3://bucket/cores/{EPOCH_COMPACT}-{ZERO_CLUSTER}/{pid}"
    core, runtime = rank["calls"]
    assert core["argv"] == [
        str(hook),
        "--neff-name", "fake_model.neff",
        "--neff-uuid", "5f0e2ad4-3c51-4c56-9d0b-fa4e00000000",
        "--date-time", EPOCH_COMPACT,
        "--pid", str(pid),
        "--tid", str(pid),
        "--log-id", "0",
        "--instance-id", IID,
        "--cluster-id", ZERO_CLUSTER,
        "--error-location", "nrt_execute()",
        "--error-code", "1006",
        "--local-output-dir", dump_dir,
        "--s3-output-prefix", s3_prefix,
        "--device-id", "0",
        "--core-id", "0",
    ]  # fmt: skip
    assert runtime["argv"] == [
        str(hook),
        "--runtime-generated", runtime["runtime_generated"],
        "--pid", str(pid),
        "--tid", str(pid),
        "--log-id", "1",
        "--instance-id", IID,
        "--local-output-dir", dump_dir,
        "--s3-output-prefix", s3_prefix,
        "--cluster-id", ZERO_CLUSTER,
        "--date-time", EPOCH_COMPACT,
    ]  # fmt: skip
    assert core["s3_output_prefix"] == runtime["s3_output_prefix"] == s3_prefix
    assert len(record.read_text(encoding="utf-8").splitlines()) == 2


@pytest.mark.parametrize("s3_variable", [None, ""], ids=["s3-unset", "s3-empty"])
def test_no_s3_flag_without_a_prefix(tmp_path, recorder, s3_variable):
    hook, _log = recorder
    env = make_env(NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=str(tmp_path / "dumps"))
    if s3_variable is not None:
        env["NEURON_RT_S3_CORE_DUMP_PREFIX"] = s3_variable

    report = run_fake(tmp_path, ["--hook", hook], env)

    calls = only_rank(report)["calls"]
    assert len(calls) == 2
    assert all("--s3-output-prefix" not in call["argv"] and call["s3_output_prefix"] is None for call in calls)


def test_s3_only_still_stages_in_the_default_local_directory(tmp_path, recorder):
    hook, _log = recorder  # records only, so nothing is written under /tmp/neuron-core-dump
    env = make_env(NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY="", NEURON_RT_S3_CORE_DUMP_PREFIX="s3://bucket/%d")

    report = run_fake(tmp_path, ["--hook", hook, "--epoch", EPOCH], env)

    assert report["gate"]["enabled"] is True
    assert report["gate"]["local_template"] == "/tmp/neuron-core-dump/dt-%d-cid-%c"
    for call in only_rank(report)["calls"]:
        assert call["local_output_dir"] == f"/tmp/neuron-core-dump/dt-{EPOCH_COMPACT}-cid-{ZERO_CLUSTER}"
        assert call["s3_output_prefix"] == f"s3://bucket/{EPOCH_COMPACT}"


# --- expansion --------------------------------------------------------------------------


def test_every_variable_and_unknown_percent_sequences_expand(tmp_path, recorder):
    hook, _log = recorder
    template = f"{tmp_path}/p%p-t%t-l%l-c%c-d%d-i%i-unknown%Q-percent%%-literal%%d-end%"
    env = make_env(NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=template)

    report = run_fake(tmp_path, ["--hook", hook, "--epoch", EPOCH, "--instance-id", IID, "--cluster-id", 255], env)

    rank = only_rank(report)
    pid = rank["pid"]
    for log_id, call in enumerate(rank["calls"]):
        assert call["log_id"] == log_id  # the log id changes per hook execution
        assert call["local_output_dir"] == (
            f"{tmp_path}/p{pid}-t{pid}-l{log_id}-c00000000000000ff-d{EPOCH_COMPACT}-i{IID}"
            "-unknown%-percent%-literal%d-end%"
        )


def test_dashed_datetime_and_cluster_id_none(tmp_path, recorder):
    hook, _log = recorder
    env = make_env(NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=f"{tmp_path}/%d_%c")
    args = ["--hook", hook, "--epoch", EPOCH, "--datetime-format", "dashed", "--cluster-id", "none"]

    report = run_fake(tmp_path, args, env)

    core = only_rank(report)["calls"][0]
    assert core["local_output_dir"] == f"{tmp_path}/2023-11-14-22-13_none"
    assert flag_value(core["argv"], "--date-time") == "2023-11-14-22-13"
    assert flag_value(core["argv"], "--cluster-id") == "none"


def test_expansions_are_truncated_to_the_runtime_buffers(tmp_path, recorder):
    hook, _log = recorder
    long_dir = "/" + "a" * 4093 + "\u00e9" + "tail"  # the cut at 4095 bytes splits the two-byte é
    long_iid = "i-" + "f" * 300
    env = make_env(NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=long_dir, NEURON_RT_S3_CORE_DUMP_PREFIX="s3://" + "b" * 5000)

    report = run_fake(tmp_path, ["--hook", hook, "--instance-id", long_iid], env)

    core, runtime = only_rank(report)["calls"]
    assert os.fsencode(core["local_output_dir"]) == b"/" + b"a" * 4093 + b"\xc3"
    assert core["s3_output_prefix"] == "s3://" + "b" * 4090
    log_name = os.path.basename(runtime["runtime_generated"])
    assert len(os.fsencode(log_name)) == 255
    assert log_name == long_iid[:255]  # "-nrt-pid-<pid>.log" fell past the cap


# --- ranks, cores, vendor capture, blocking ----------------------------------------------


def test_two_ranks_two_cores_share_one_directory_and_block_on_the_hook(tmp_path):
    hook = install_fixture(tmp_path, version="2.32.28.0")
    dumps = tmp_path / "dumps"
    env = make_env(
        NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=f"{dumps}/%d-%c",
        FIXTURE_NEURON_DUMP_SLEEP="0.2",
        FIXTURE_NEURON_DUMP_BYTES="1024",
    )
    args = ["--hook", hook, "--ranks", 2, "--cores", "0:0,0:1", "--epoch", EPOCH, "--instance-id", IID]

    report = run_fake(tmp_path, args, env)

    ranks = report["ranks"]
    assert [rank["rank"] for rank in ranks] == [0, 1]
    assert len({rank["pid"] for rank in ranks} | {os.getpid()}) == 3
    shared_dir = dumps / f"{EPOCH_COMPACT}-{ZERO_CLUSTER}"
    for rank in ranks:
        pid, calls = rank["pid"], rank["calls"]
        assert [(call["kind"], call["log_id"], call["core_id"]) for call in calls] == [
            ("core", 0, 0),
            ("core", 1, 1),
            ("runtime-generated", 2, None),
        ]
        assert {call["local_output_dir"] for call in calls} == {str(shared_dir)}
        assert all(call["blocked_seconds"] >= 0.2 and call["exit_status"] == 0 for call in calls)
        for core in (0, 1):
            capture = (shared_dir / f"{IID}-nd0-nc{core}-pid-{pid}-tid-{pid}-lid-{core}").read_bytes()
            assert b"tool: aws-neuronx-tools 2.32.28.0" in capture
            assert f"--core-id={core}\n".encode() in capture
            assert len(capture) > 1024
        assert (shared_dir / f"{IID}-nrt-pid-{pid}.log").is_file()
    assert len(list(shared_dir.iterdir())) == 6  # 2 ranks x (2 cores + 1 log), no leftovers
    # All ranks fail at one shared moment; one after the other would be >= 3 x 0.2 s apart.
    first_calls = [rank["calls"][0]["started_at"] for rank in ranks]
    assert max(first_calls) - min(first_calls) < 0.3
    assert min(first_calls) >= report["run"]["fail_at"]


def test_log_tail_written_into_the_dump_dir_is_not_copied_again(tmp_path):
    hook = install_fixture(tmp_path)
    dumps = tmp_path / "dumps"
    env = make_env(NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=str(dumps), FIXTURE_NEURON_DUMP_BYTES="16")
    args = ["--hook", hook, "--log-tail-location", "dump-dir", "--instance-id", IID, "--no-neff"]

    report = run_fake(tmp_path, args, env)

    rank = only_rank(report)
    core, runtime = rank["calls"]
    assert "--neff-name" not in core["argv"] and "--neff-uuid" not in core["argv"]
    assert runtime["runtime_generated"] == str(dumps / f"{IID}-nrt-pid-{rank['pid']}.log")
    assert sorted(path.name for path in dumps.iterdir()) == sorted(
        [f"{IID}-nd0-nc0-pid-{rank['pid']}-tid-{rank['pid']}-lid-0", f"{IID}-nrt-pid-{rank['pid']}.log"]
    )


def test_hook_failures_are_reported_and_do_not_fail_the_runtime(tmp_path):
    env = make_env(NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=str(tmp_path / "dumps"))
    failing = write_hook(tmp_path / "failing-hook", "#!/bin/sh\nexit 3\n")
    no_shebang = write_hook(tmp_path / "no-shebang-hook", "echo no interpreter line\n")

    failing_calls = only_rank(run_fake(tmp_path, ["--hook", failing], env))["calls"]
    unexecutable_calls = only_rank(run_fake(tmp_path, ["--hook", no_shebang], env))["calls"]

    assert [call["exit_status"] for call in failing_calls] == [3, 3]
    # execv, not a shell: a script without "#!" cannot run, as with the real runtime.
    assert [call["exit_status"] for call in unexecutable_calls] == [127, 127]
    assert "Exec format error" in unexecutable_calls[0]["exec_error"]


def test_report_on_stdout_is_not_mixed_with_hook_output(tmp_path):
    chatty = write_hook(tmp_path / "chatty-hook", "#!/bin/sh\necho hook was here\n")
    env = make_env(NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=str(tmp_path / "dumps"))
    command = [PYTHON, str(FAKE_NRT), "--hook", str(chatty), "--report", "-"]

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=15, check=True)

    assert len(json.loads(done.stdout)["ranks"][0]["calls"]) == 2
    assert done.stderr.count("hook was here") == 2


# --- long-running workloads ---------------------------------------------------------------


def wait_for_mapping(pid: int, needle: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        maps = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8")
        for line in maps.splitlines():
            if needle in line:
                return line.split()[-1]
        time.sleep(0.02)
    raise AssertionError(f"no {needle} mapping in /proc/{pid}/maps")


def test_holding_workload_maps_libnrt_and_stops_cleanly_on_sigterm(tmp_path, recorder):
    hook, record = recorder
    report = tmp_path / "report.json"
    env = make_env(NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=str(tmp_path / "dumps"))
    command = [PYTHON, str(FAKE_NRT), "--hook", str(hook), "--hold", "30", "--report", str(report)]
    workload = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        mapped = wait_for_mapping(workload.pid, "libnrt.so")
        assert os.path.basename(mapped) == "libnrt.so.fake"
        workload.send_signal(signal.SIGTERM)
        assert workload.wait(timeout=5) == 0
    finally:
        if workload.poll() is None:
            workload.kill()
        workload.communicate()

    rank = only_rank(json.loads(report.read_text(encoding="utf-8")))
    assert rank["pid"] == workload.pid
    assert rank["terminated"] is True and rank["failed"] is False and rank["calls"] == []
    assert not os.path.exists(mapped)  # private temp files are gone
    assert not record.exists()


def rank_pids(launcher_pid: int, count: int, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text(encoding="ascii").split()
        if len(children) == count:
            return [int(pid) for pid in children]
        time.sleep(0.02)
    raise AssertionError(f"launcher {launcher_pid} did not start {count} ranks")


def test_sigterm_to_the_launcher_stops_every_rank(tmp_path, recorder):
    hook, record = recorder
    report = tmp_path / "report.json"
    env = make_env(NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=str(tmp_path / "dumps"))
    command = [PYTHON, str(FAKE_NRT), "--hook", str(hook), "--ranks", "2", "--hold", "30", "--report", str(report)]
    launcher = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        pids = rank_pids(launcher.pid, 2)
        mapped = [wait_for_mapping(pid, "libnrt.so") for pid in pids]
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=5) == 0
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()

    ranks = json.loads(report.read_text(encoding="utf-8"))["ranks"]
    assert sorted(rank["pid"] for rank in ranks) == sorted(pids)
    assert all(rank["terminated"] and rank["calls"] == [] for rank in ranks)
    assert len(set(mapped)) == 1 and not os.path.exists(mapped[0])  # one shared fake libnrt, removed
    assert not record.exists()


def test_hold_then_fail_with_a_given_libnrt_path(tmp_path, recorder):
    hook, _log = recorder
    libnrt = tmp_path / "lib" / "libnrt.so.1"
    libnrt.parent.mkdir()
    report = tmp_path / "report.json"
    env = make_env(NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=str(tmp_path / "dumps"))
    command = [PYTHON, str(FAKE_NRT), "--hook", str(hook), "--hold", "0.5", "--libnrt-map", str(libnrt)]
    workload = subprocess.Popen([*command, "--report", str(report)], env=env, stderr=subprocess.DEVNULL)
    try:
        assert wait_for_mapping(workload.pid, "libnrt.so.1") == str(libnrt)
        assert workload.wait(timeout=10) == 0
    finally:
        if workload.poll() is None:
            workload.kill()
            workload.wait()

    rank = only_rank(json.loads(report.read_text(encoding="utf-8")))
    assert rank["failed"] is True
    assert [call["kind"] for call in rank["calls"]] == ["core", "runtime-generated"]
    assert not libnrt.exists()  # it did not exist before, so the fake created and removed it


# --- command line and fixture programs ---------------------------------------------------


@pytest.mark.parametrize(
    "bad_args",
    [
        ["--cores", "0-0"],
        ["--ranks", "0"],
        ["--cluster-id", "-1"],
        ["--epoch", "nan"],
        ["--datetime-format", "iso"],
        ["--libnrt-map", "/tmp/libfoo.so"],
        ["--instance-id", "i-1/2"],
    ],
)
def test_invalid_arguments_exit_2_with_a_message(bad_args):
    done = subprocess.run(
        [PYTHON, str(FAKE_NRT), *bad_args], env=make_env(), capture_output=True, text=True, check=False
    )

    assert done.returncode == 2
    assert re.search(r"fake_nrt\.py: error: .+", done.stderr)


@pytest.mark.parametrize("version", ["2.30.10.0", "2.32.28.0"])
def test_fixture_tools_carry_their_package_version(tmp_path, version):
    neuron_ls = install_fixture(tmp_path, "neuron-ls", version)
    neuron_top = install_fixture(tmp_path, "neuron-top", version)

    listing = subprocess.run([str(neuron_ls)], capture_output=True, text=True, check=True).stdout
    top = subprocess.run([str(neuron_top)], capture_output=True, text=True, check=True).stdout

    assert f"aws-neuronx-tools {version}" in listing and "NEURON" in listing
    assert version in top
    assert "@VERSION@" not in install_fixture(tmp_path, "neuron-dump", version).read_text(encoding="utf-8")


def test_fixture_neuron_dump_tolerates_any_order_and_unknown_flags(tmp_path):
    hook = install_fixture(tmp_path)
    out = tmp_path / "out"
    args = ["--future-flag", "--core-id", "3", "--local-output-dir", str(out), "--pid", "7", "--device-id", "1"]
    args += ["--tid", "8", "--log-id", "9", "--instance-id", IID, "--another=x"]

    subprocess.run([str(hook), *args], env=make_env(FIXTURE_NEURON_DUMP_BYTES="8"), check=True)

    capture = (out / f"{IID}-nd1-nc3-pid-7-tid-8-lid-9").read_bytes()
    assert b"--future-flag=\n" in capture and b"--another=x\n" in capture
