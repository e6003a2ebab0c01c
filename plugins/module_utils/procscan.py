# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find processes that loaded the Neuron runtime and read the variables they started with.

A process uses the runtime iff it maps a ``libnrt.so*`` file. Its environment
at exec time is ``/proc/<pid>/environ``; libnrt read the variables from there
(through getenv) once, in nrt_init, so that is what its dumps obey.

Processes come and go while we scan, and some files are root-only: every read
tolerates both. ``paths.PROC_ROOT`` can point at a fake tree for tests.
"""

from __future__ import annotations

import contextlib
import os

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract, paths

RUNTIME_LIBRARY_PREFIX = "libnrt.so"


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def maps_runtime(maps_text):
    """Paths of mapped ``libnrt.so*`` files in a /proc/<pid>/maps text."""
    found = []
    for line in maps_text.splitlines():
        # address perms offset dev inode [pathname] -- the path may contain spaces.
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        path = parts[5].strip()
        if path.endswith(" (deleted)"):
            path = path[: -len(" (deleted)")]
        if os.path.basename(path).startswith(RUNTIME_LIBRARY_PREFIX) and path not in found:
            found.append(path)
    return found


def parse_environ(data):
    """{name: value} from NUL-separated NAME=value entries."""
    env = {}
    for entry in data.split(b"\0"):
        name, eq, value = entry.partition(b"=")
        if eq and name:
            env[name.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return env


def unit_from_cgroup(text):
    """The systemd unit (``x.service`` / ``y.scope``) a process runs in, from /proc/<pid>/cgroup."""
    best = None
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        for part in reversed(path.split("/")):
            if part.endswith((".service", ".scope")):
                best = part
                break
        if line.startswith("0::") and best:
            return best
    return best


def scan(proc_root=None):
    """Scan every process. Returns (processes, stats).

    Each process: pid, comm, libraries, unit, env (our variables only, None
    when unreadable), foreign_namespace (runs in another mount namespace, e.g.
    a container: host settings do not reach it), error.
    """
    root = proc_root or paths.PROC_ROOT
    stats = {"scanned": 0, "runtime_processes": 0, "unreadable": 0}
    found = []
    try:
        own_mnt = os.readlink(os.path.join(root, "self", "ns", "mnt"))
    except OSError:
        own_mnt = None
    try:
        entries = os.listdir(root)
    except OSError:
        return found, stats
    for entry in sorted(entries, key=lambda e: (len(e), e)):
        if not entry.isdigit():
            continue
        base = os.path.join(root, entry)
        stats["scanned"] += 1
        try:
            libraries = maps_runtime(_read(os.path.join(base, "maps")).decode("utf-8", "surrogateescape"))
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited while we looked
        except OSError:
            stats["unreadable"] += 1
            continue
        if not libraries:
            continue
        stats["runtime_processes"] += 1
        proc = {
            "pid": int(entry),
            "comm": None,
            "libraries": libraries,
            "unit": None,
            "env": None,
            "foreign_namespace": False,
            "error": None,
        }
        with contextlib.suppress(OSError):
            proc["comm"] = _read(os.path.join(base, "comm")).decode("utf-8", "replace").strip()
        with contextlib.suppress(OSError):
            proc["unit"] = unit_from_cgroup(_read(os.path.join(base, "cgroup")).decode("utf-8", "replace"))
        try:
            mnt = os.readlink(os.path.join(base, "ns", "mnt"))
            proc["foreign_namespace"] = own_mnt is not None and mnt != own_mnt
        except OSError:
            pass
        try:
            env = parse_environ(_read(os.path.join(base, "environ")))
            proc["env"] = {name: env.get(name) for name in contract.MANAGED_VARS}
        except (FileNotFoundError, ProcessLookupError):
            continue
        except OSError as exc:
            stats["unreadable"] += 1
            proc["error"] = "cannot read environ: %s" % exc.strerror
        found.append(proc)
    return found, stats
