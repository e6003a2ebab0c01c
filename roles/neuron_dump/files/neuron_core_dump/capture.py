"""Extra diagnostics captured next to the dump (neuron-ls, kernel log, EFA counters, ...).

Runs on the uploader's side (root, asynchronous): close to the failure in time, but
never on the runtime's wait. Each command has a timeout (its whole process group is
killed) and an output cap. Output lands in the dump dir as
``<instance id>-extra-<name>.txt``, 0600 and owned by root (the kernel log may hold
lines the dump's owner may not read; ``capture.readable_by_owner`` gives it to the
owner instead), written with a temp
file + rename relative to the dump dir's descriptor, so a name planted by the user
(symlink or not) is replaced, never followed.
"""

import os
import select
import signal
import subprocess
import time

from . import fsutil, layout

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ENV = {"PATH": layout.HOOK.rpartition("/")[0] + ":" + _PATH, "LANG": "C.UTF-8"}


def file_name(instance_id, name):
    return "%s-extra-%s.txt" % (instance_id, name)


def run_command(argv, timeout, max_bytes):
    """Run one command; return (header dict, output bytes). Never raises."""
    started = time.monotonic()
    info = {"argv": argv, "timeout_seconds": timeout}
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(_ENV),
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        info["error"] = str(exc)
        return info, b""
    chunks = []
    total = 0
    deadline = started + timeout
    fd = proc.stdout.fileno()
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                info["timed_out"] = True
                break
            ready, _unused, _unused = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            if total < max_bytes:
                chunks.append(chunk[: max_bytes - total])
            total += len(chunk)
            if total >= max_bytes:
                info["truncated"] = True
                break
    finally:
        if proc.poll() is None and (info.get("timed_out") or info.get("truncated")):
            fsutil.quietly(os.killpg, proc.pid, signal.SIGKILL)
        proc.stdout.close()
        try:
            info["exit_code"] = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            info["exit_code"] = proc.wait()
    info["duration_ms"] = int((time.monotonic() - started) * 1000)
    return info, b"".join(chunks)


def capture_all(capture_config, dump_fd, instance_id, owner, logger):
    """Run every configured command and save its output. Returns the file names written.

    ``owner`` is (uid, gid) to give the files to, or None to keep them root's.
    """
    written = []
    if not capture_config["enabled"]:
        return written
    for command in capture_config["commands"]:
        info, output = run_command(command["argv"], command["timeout_seconds"], capture_config["max_output_bytes"])
        header = "".join("# %s: %s\n" % (key, value) for key, value in sorted(info.items()))
        name = file_name(instance_id, command["name"])
        tmp = fsutil.TMP_PREFIX + fsutil.unique_suffix()
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(tmp, flags, 0o600, dir_fd=dump_fd)
            try:
                if owner is not None and os.geteuid() == 0:
                    os.fchown(fd, owner[0], owner[1])  # configured: the dump's owner may read it
                for data in (header.encode("utf-8", "replace"), b"\n", output):
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=dump_fd, dst_dir_fd=dump_fd)
            written.append(name)
        except OSError as exc:
            logger.warning("extra capture %s not saved: %s" % (command["name"], exc))
            fsutil.quietly(os.unlink, tmp, dir_fd=dump_fd)
        if info.get("error") or info.get("timed_out"):
            logger.warning("extra capture %s: %s" % (command["name"], info.get("error") or "timed out"))
    return written
