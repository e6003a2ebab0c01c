"""Run the diverted vendor capture (``neuron-dump.distrib``) with the same argv, bounded in time.

The vendor capture collects hardware state we cannot, so it runs first. It is
started with ``posix_spawn`` in its own session (so the whole process group can be
killed on timeout) and waited for through a pidfd where the kernel has them, a
short polling loop elsewhere. :mod:`subprocess` is avoided: its import alone costs
more than the rest of the hook.
"""

import os
import time

from . import fsutil

# pid of the running vendor process group, for the hook's watchdog
running = {"pid": None}


def _kill_group(pid):
    # SIGKILL: the runtime is waiting, there is no time for a polite stop
    fsutil.quietly(os.killpg, pid, 9)


def kill_running():
    pid = running["pid"]
    if pid:
        _kill_group(pid)


def _wait_pidfd(pid, timeout):
    import select

    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))
    finally:
        os.close(pidfd)


def _wait_poll(pid, timeout):
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done:
            # reaped here: remember the status for the caller
            _reaped[pid] = _status
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.025)


_reaped = {}


def run(path, argv, timeout):
    """Run the vendor capture. Returns a dict for the record (never raises for a missing file)."""
    result = {"path": path, "present": False, "ran": False}
    try:
        os.stat(path)
    except OSError:
        return result
    result["present"] = True
    if not os.access(path, os.X_OK):
        result["error"] = "not executable"
        return result
    started = time.monotonic()
    pid = os.posix_spawn(path, [path, *argv], os.environ, setsid=True)
    running["pid"] = pid
    result["ran"] = True
    try:
        try:
            finished = _wait_pidfd(pid, timeout) if hasattr(os, "pidfd_open") else _wait_poll(pid, timeout)
        except OSError:  # no pidfd support in this kernel
            finished = _wait_poll(pid, timeout)
        if not finished:
            _kill_group(pid)
            result["timed_out"] = True
        if pid in _reaped:
            status = _reaped.pop(pid)
        else:
            _unused, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status):
            result["exit_code"] = os.WEXITSTATUS(status)
        elif os.WIFSIGNALED(status):
            result["signal"] = os.WTERMSIG(status)
    finally:
        running["pid"] = None
        result["duration_ms"] = int((time.monotonic() - started) * 1000)
    return result
