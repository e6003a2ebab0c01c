"""Nothing the hook starts outlives it, and nothing it is given makes it copy without bound.

Real processes throughout: the hook as the runtime runs it, the bed's fixture vendor (a
shell script that ``cp``s the ``--runtime-generated`` file, as the vendor tool does) and a
job scheduler's teardown played by ``killpg(SIGKILL)`` of the hook's process group.
"""

import os
import signal
import subprocess
import time

import pytest
from ncd_bed import INSTANCE_ID, NOBODY, REPO_ROOT, SYSTEM_PYTHON

FIXTURE_VENDOR = os.path.join(REPO_ROOT, "tests", "bed", "fixtures", "aws-neuronx-tools", "bin", "neuron-dump")


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _tree_bytes(path):
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(base, name)).st_size
    return total


def _fixture_vendor(bed, file_limit_kib=None):
    """The bed's vendor stand-in; ``file_limit_kib`` caps what it may write (so a regression
    here costs megabytes, not the disk of a shared machine)."""
    with open(FIXTURE_VENDOR) as handle:
        body = handle.read()
    if file_limit_kib:
        body = body.replace("set -u\n", "set -u\nulimit -f %d\n" % (file_limit_kib * 2), 1)  # 512-byte blocks
    bed.write_vendor(body)


def _popen_hook(bed, argv, user=None, env=None):
    """The hook in a process group of its own, as a job step is: the group can be killed alone."""
    run_env = {"PATH": "/usr/bin:/bin"}
    run_env.update(env or {})

    def preexec():
        os.setpgid(0, 0)
        if user is not None:
            os.setgid(user)
            os.setgroups([])
            os.setuid(user)

    return subprocess.Popen(
        [bed.hook, *argv], env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=preexec
    )


@pytest.mark.parametrize("kill", ["group", "hook-only"])
def test_sigkilled_hook_leaves_no_vendor_process_and_no_writes(bed, kill):
    """Today's hook starts the vendor with setsid: the killed job's vendor goes on writing.

    ``group``: a job scheduler's teardown (killpg); ``hook-only``: the OOM killer or a kill -9.
    """
    shared = os.path.dirname(bed.log)  # 1777: the workload user may write here
    pids = os.path.join(shared, "vendor-pids")
    out = os.path.join(shared, "vendor-writes")
    bed.write_vendor(
        "#!/bin/sh\n"
        "( while :; do echo x >> %s; sleep 0.02; done ) &\n"
        "echo $$ $! > %s.tmp && mv %s.tmp %s\n"
        "wait\n" % (out, pids, pids, pids)
    )
    bed.write_config({"hook": {"vendor_timeout_seconds": 60, "budget_seconds": 5}})
    proc = _popen_hook(bed, bed.runtime_argv(bed.dump_dir()), user=NOBODY)
    vendor_pid = writer_pid = None
    try:
        assert _wait_for(lambda: os.path.exists(pids) and os.path.exists(out), 10), "the vendor never started"
        with open(pids) as handle:
            vendor_pid, writer_pid = (int(word) for word in handle.read().split())
        if kill == "group":
            os.killpg(proc.pid, signal.SIGKILL)  # the scheduler's teardown of the job step
        else:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert _wait_for(lambda: not _alive(vendor_pid) and not _alive(writer_pid), 5), "vendor outlived the hook"
        size = os.path.getsize(out)
        time.sleep(0.3)
        assert os.path.getsize(out) == size, "something kept writing after the hook was killed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for pid in (vendor_pid, writer_pid):  # a failed run must not leave its leak behind
            if pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_vendor_leftovers_end_with_the_hook_and_the_hook_reaps_everything(bed):
    """A vendor that exits leaving a background child: the child ends when the hook does."""
    pid_file = os.path.join(bed.base, "leftover.pid")
    bed.write_vendor("#!/bin/sh\nsleep 60 &\necho $! > %s\nexit 0\n" % pid_file)
    proc, seconds = bed.run_hook(bed.runtime_argv(bed.dump_dir()))
    assert proc.returncode == 0 and seconds < 5
    with open(pid_file) as handle:
        leftover = int(handle.read())
    assert _wait_for(lambda: not _alive(leftover), 2)


def test_dev_zero_as_runtime_generated_is_refused_before_the_vendor_sees_it(bed):
    _fixture_vendor(bed, file_limit_kib=8 * 1024)
    bed.write_config({"hook": {"vendor_timeout_seconds": 30}})
    dump = bed.dump_dir()
    proc, seconds = bed.run_hook(bed.runtime_argv(dump, runtime_file="/dev/zero"), user=NOBODY)
    assert proc.returncode == 0
    assert seconds < 5
    assert _tree_bytes(dump) < 64 * 1024, sorted(os.listdir(dump))
    (name,) = [n for n in os.listdir(dump) if "-ncd-" in n]
    with open(os.path.join(dump, name)) as handle:
        text = handle.read()
    assert "not a regular file" in text
    assert '"ran": false' in text  # the vendor was not run for a file it must not copy


def test_fifo_as_runtime_generated_does_not_hang_the_hook(bed):
    _fixture_vendor(bed, file_limit_kib=8 * 1024)
    bed.write_config({"hook": {"vendor_timeout_seconds": 20}})
    fifo = os.path.join(os.path.dirname(bed.log), "nrt.log")  # where the workload user can reach it
    os.mkfifo(fifo)
    dump = bed.dump_dir()
    proc, seconds = bed.run_hook(bed.runtime_argv(dump, runtime_file=str(fifo)), user=NOBODY)
    assert proc.returncode == 0
    assert seconds < 3, "the vendor waited on the FIFO until its timeout"
    assert _tree_bytes(dump) < 64 * 1024


def test_vendor_gets_our_bounded_copy_of_the_runtime_file(bed, tmp_path):
    """The vendor is pointed at the copy in the dump dir, so it has nothing unbounded to read."""
    _fixture_vendor(bed)
    argv_log = os.path.join(bed.base, "vendor.log")
    runtime_file = tmp_path / ("%s-nrt-pid-100.log" % INSTANCE_ID)
    runtime_file.write_bytes(b"tail\n" * 1000)
    os.chmod(tmp_path, 0o755)
    dump = bed.dump_dir()
    proc, _unused = bed.run_hook(
        bed.runtime_argv(dump, runtime_file=str(runtime_file)), env={"FIXTURE_NEURON_DUMP_LOG": argv_log}
    )
    assert proc.returncode == 0, proc.stderr
    with open(argv_log) as handle:
        assert "rg=%s/%s" % (dump, runtime_file.name) in handle.read()
    with open(os.path.join(dump, runtime_file.name), "rb") as handle:
        assert handle.read() == runtime_file.read_bytes()
    assert not [n for n in os.listdir(dump) if ".partial." in n]


def test_runtime_file_over_the_cap_is_neither_copied_nor_given_to_the_vendor(bed, tmp_path):
    _fixture_vendor(bed, file_limit_kib=8 * 1024)
    bed.write_config({"hook": {"max_copy_bytes": 4096}})
    runtime_file = tmp_path / "big.log"
    runtime_file.write_bytes(b"x" * 100000)
    os.chmod(tmp_path, 0o755)
    dump = bed.dump_dir()
    proc, _unused = bed.run_hook(bed.runtime_argv(dump, runtime_file=str(runtime_file)))
    assert proc.returncode == 0
    assert [n for n in os.listdir(dump) if "-ncd-" not in n] == []


def test_a_runtime_file_growing_during_the_copy_is_copied_up_to_the_size_seen_at_open(bed, lib_dir, tmp_path):
    """In a real process: open (fstat), then the file grows, then the copy: bounded by the first size."""
    source = tmp_path / "growing.log"
    source.write_bytes(b"a" * 65536)
    target = tmp_path / "dump"
    target.mkdir()
    code = (
        "import os, sys; sys.path.insert(0, %r)\n"
        "from neuron_core_dump import config, hook\n"
        "cfg = config.defaults()\n"
        "runtime = hook.RuntimeFile(%r, cfg['hook'])\n"
        "open(%r, 'ab').write(b'b' * 1000000)\n"
        "fd = os.open(%r, os.O_RDONLY | os.O_DIRECTORY)\n"
        "print(hook.copy_runtime_generated(runtime, fd, cfg))\n"
    ) % (lib_dir, str(source), str(source), str(target))
    proc = subprocess.run([SYSTEM_PYTHON, "-IS", "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert proc.stdout.strip() == "growing.log"
    assert (target / "growing.log").read_bytes() == b"a" * 65536


def test_a_fifo_is_never_even_opened(bed):
    """Opening has side effects (a FIFO's open releases its waiting writer; a device's open can
    arm a watchdog): a writer blocked in the FIFO must still be blocked after the hook ran."""
    shared = os.path.dirname(bed.log)
    fifo = os.path.join(shared, "nrt.log")
    released = os.path.join(shared, "writer-released")
    os.mkfifo(fifo)
    writer = subprocess.Popen(["/bin/sh", "-c", "exec 3>%s; touch %s" % (fifo, released)])
    try:
        proc, seconds = bed.run_hook(bed.runtime_argv(bed.dump_dir(), runtime_file=fifo), user=NOBODY)
        assert proc.returncode == 0 and seconds < 10  # the hook's default budget: nothing blocked it
        time.sleep(0.2)
        assert not os.path.exists(released), "the hook opened the FIFO"
        assert writer.poll() is None
    finally:
        writer.kill()
        writer.wait(10)


def test_without_a_guard_the_vendor_still_runs(bed, lib_dir):
    """fork() failing for the guard (EAGAIN at a process limit; simulated, in a real process)
    must not cost the vendor capture: it runs in a session of its own, as before the guard."""
    marker = os.path.join(bed.base, "vendor-ran")
    bed.write_vendor("#!/bin/sh\ntouch %s\n" % marker)
    code = (
        "import errno, os, sys; sys.path.insert(0, %r)\n"
        "from neuron_core_dump import vendor\n"
        "def no_fork():\n    raise OSError(errno.EAGAIN, 'Resource temporarily unavailable')\n"
        "os.fork = no_fork\n"
        "print(vendor.run(%r, [], 10))\n"
    ) % (lib_dir, bed.vendor)
    proc = subprocess.run([SYSTEM_PYTHON, "-IS", "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert "'exit_code': 0" in proc.stdout and "guard_error" in proc.stdout, proc.stdout
    assert os.path.exists(marker)
