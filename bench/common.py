"""Shared pieces of the benchmark: paths, bounded subprocesses, statistics, test data."""

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE_NRT = os.path.join(REPO_ROOT, "tests", "bed", "fake_nrt.py")
SYSTEM_PYTHON = "/usr/bin/python3"
MIB = 1024 * 1024

# Dummy credentials for the local S3; the config/credentials files are pointed at /dev/null
# so nothing from ~/.aws (a real profile, a real region) leaks into the measurement.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


class BenchError(Exception):
    """Something broke: the numbers of this run cannot be trusted."""


def hook_interpreter():
    """The interpreter of the hook and of the baseline: the system one, as on hosts."""
    return SYSTEM_PYTHON if os.access(SYSTEM_PYTHON, os.X_OK) else sys.executable


def find_tool(name):
    """A console script of the bench's own environment (the venv), else one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found is None:
        raise BenchError("%s not found next to %s nor on PATH (run with the venv on PATH)" % (name, sys.executable))
    return found


def base_env(home):
    """A small, fixed environment, so the shell that started the bench does not change the numbers."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home}


def run_bounded(argv, timeout, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE):
    """Run to completion within ``timeout`` seconds; on expiry kill its whole process group.

    Returns (returncode, stdout bytes, stderr bytes, wall seconds).
    """
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise BenchError("%s did not finish within %ds" % (os.path.basename(argv[0]), timeout)) from None
    except BaseException:  # interrupted: leave nothing running behind us
        kill_group(proc)
        raise
    return proc.returncode, out, err, time.monotonic() - started


def kill_group(proc):
    """SIGKILL the process group led by ``proc`` (started with start_new_session) and reap it."""
    with contextlib.suppress(ProcessLookupError):  # it may have exited on its own meanwhile
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def children_cpu_seconds():
    """User + system CPU of every child reaped so far (deltas give one child's cost)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tail(data, lines=15):
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")
    return "\n".join(text.strip().splitlines()[-lines:])


def percentile(samples, fraction):
    """Linear interpolation between closest ranks (numpy's default), ``fraction`` in [0, 1]."""
    ordered = sorted(samples)
    if not ordered:
        raise BenchError("no samples")
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def write_random_file(path, size, chunk=4 * MIB):
    """Incompressible content, so no layer can cheat with compression or sparse files."""
    with open(path, "wb") as handle:
        remaining = size
        while remaining:
            step = min(chunk, remaining)
            handle.write(os.urandom(step))
            remaining -= step
    os.chmod(path, 0o600)


def regular_files(directory):
    """{name: size} of the regular files directly in ``directory`` (what a dump upload covers)."""
    sizes = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                sizes[entry.name] = entry.stat(follow_symlinks=False).st_size
    return sizes
