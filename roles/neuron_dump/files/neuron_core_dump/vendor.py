"""Run the diverted vendor capture (``neuron-dump.distrib``) with the same argv, bounded in time.

The vendor capture collects hardware state we cannot, so it runs first. It is
started with ``posix_spawn`` and waited for through a pidfd where the kernel has
them, a short polling loop elsewhere. :mod:`subprocess` is avoided: its import
alone costs more than the rest of the hook.

Whatever ends the hook ends the vendor too. The vendor runs in a process group
of its own, led by a *guard*: a forked copy of the hook that does nothing but
block on a pipe whose write end only the hook holds.

- timeout, or the vendor done: the hook SIGKILLs the guard's group, which ends the
  vendor, everything it started (``cp`` of a shell script) and the guard;
- the hook killed (SIGKILL of its process group by a job scheduler, the OOM
  killer, our own watchdog): the kernel closes the write end, the guard's read
  returns and the guard SIGKILLs its own group. The killer does not reach the
  guard, because the guard is not in the hook's group.

Why not the alternatives: ``PR_SET_PDEATHSIG`` reaches only the direct child (a
vendor shell dies, its ``cp`` keeps copying) and needs code between fork and
exec (ctypes, or ``preexec_fn``, which is unsafe with threads); keeping the vendor
in the hook's own group lets a group kill reach it, but then a timeout could not
kill the vendor's group without killing the hook and the workload that share it.
The guard kills its *own* group while it is a live member of it, so the group id
cannot have been reused by the time the signal is sent.
"""

import os
import time

from . import fsutil

_SIGKILL = 9

# process groups of the running vendor (normally just the guard's), for the hook's watchdog
running = {"groups": []}


def _kill_group(pgid):
    # SIGKILL: the runtime is waiting, there is no time for a polite stop
    fsutil.quietly(os.killpg, pgid, _SIGKILL)


def kill_running():
    for pgid in running["groups"]:
        _kill_group(pgid)


def _guard(read_fd):
    """The guard's whole life (in the forked child): wait for the hook to go, end the group."""
    try:
        os.setpgid(0, 0)
        os.read(read_fd, 1)  # returns b"" when every write end is closed: the hook is gone
    except BaseException:  # any way out ends the group below
        pass
    finally:
        try:
            os.killpg(0, _SIGKILL)  # kills this process too
        finally:
            os._exit(0)


def start_guard():
    """Fork the guard; return (guard pid = the vendor's pgid, write end the hook keeps open)."""
    read_fd, write_fd = os.pipe()  # both close-on-exec: the vendor inherits neither end
    try:
        pid = os.fork()
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    if pid == 0:  # pragma: no cover - runs in the child, which never returns
        try:
            os.close(write_fd)
        finally:
            _guard(read_fd)
    os.close(read_fd)
    # Set it from both sides (as shells do): whichever runs first, the group exists before
    # the vendor is spawned into it, and a group kill of the hook right after the fork
    # can no longer reach the guard.
    # (EACCES: the child got there first; ESRCH: it is gone already)
    fsutil.quietly(os.setpgid, pid, pid)
    return pid, write_fd


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
    """Poll without reaping (WNOWAIT): the exited vendor keeps its pid until we have killed its group."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.025)


def _spawn(path, argv, guard):
    """Start the vendor in the guard's group; (pid, groups to kill when done)."""
    if guard is not None:
        try:
            return os.posix_spawn(path, [path, *argv], os.environ, setpgroup=guard), [guard]
        except OSError:
            pass  # the guard is gone (killed by someone else)
    # No guard: a session of its own still lets a timeout end the vendor's group (but a killed
    # hook leaves it running: better than no vendor capture at all)
    pid = os.posix_spawn(path, [path, *argv], os.environ, setsid=True)
    return pid, [pid] if guard is None else [guard, pid]


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
    try:
        guard, guard_fd = start_guard()
    except OSError as exc:  # e.g. EAGAIN at the process limit: the capture matters more
        guard, guard_fd = None, None
        result["guard_error"] = str(exc)
    running["groups"] = [] if guard is None else [guard]
    pid = None
    try:
        pid, running["groups"] = _spawn(path, argv, guard)
        result["ran"] = True
        try:
            finished = _wait_pidfd(pid, timeout) if hasattr(os, "pidfd_open") else _wait_poll(pid, timeout)
        except OSError:  # no pidfd support in this kernel
            finished = _wait_poll(pid, timeout)
        if not finished:
            result["timed_out"] = True
    finally:
        # Done or timed out: end the vendor, whatever it left running in its group, and the
        # guard. The vendor is not reaped yet (a zombie keeps its pid), so no reused pid is hit.
        kill_running()
        running["groups"] = []
        if guard is not None:
            os.close(guard_fd)
            fsutil.quietly(os.waitpid, guard, 0)
        result["duration_ms"] = int((time.monotonic() - started) * 1000)
    status = os.waitpid(pid, 0)[1]
    if os.WIFEXITED(status):
        result["exit_code"] = os.WEXITSTATUS(status)
    elif os.WIFSIGNALED(status):
        result["signal"] = os.WTERMSIG(status)
    return result
