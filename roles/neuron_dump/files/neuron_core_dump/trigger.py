"""Get the uploader going without making the runtime wait.

On systemd hosts a path unit watches ``incoming/``: nothing to do here. Elsewhere
(containers without an init system) the hook starts a detached worker: double fork
and setsid so the worker is not the runtime's child, stdio on /dev/null and every
inherited descriptor closed so it holds none of the workload's pipes, and a small
clean environment (only PATH, locale and AWS_* so container credentials still work).
A worker that is already running is detected with a shared lock probe
(:func:`spool.worker_running`) and not started twice.
"""

import os

from . import fsutil

_SYSTEMD_MARKER = "/run/systemd/system"


def mode_for(config):
    mode = config["uploader"]["trigger"]
    if mode == "auto":
        mode = "systemd" if os.path.isdir(_SYSTEMD_MARKER) else "spawn"
    return mode


def worker_env(environ):
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    for key, value in environ.items():
        if key.startswith("AWS_"):
            env[key] = value
    return env


def _close_inherited_fds():
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = range(3, 1024)
    for fd in fds:
        if fd > 2:
            fsutil.quietly(os.close, fd)


def spawn_worker(cli_path, config_path):
    """Start ``<cli_path> upload --worker --config <config_path>`` fully detached."""
    argv = [cli_path, "upload", "--worker", "--config", config_path]
    env = worker_env(os.environ)
    pid = os.fork()
    if pid == 0:  # first child: become a session leader, fork the worker, leave
        try:
            os.setsid()
            if os.fork() == 0:
                devnull = os.open("/dev/null", os.O_RDWR)
                for target in (0, 1, 2):
                    os.dup2(devnull, target)
                _close_inherited_fds()
                os.chdir("/")
                os.execve(cli_path, argv, env)
        except BaseException:  # a forked child must never return into the hook
            pass
        os._exit(0)
    os.waitpid(pid, 0)  # the first child exits at once; reap it so no zombie is left
    return True
