# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How much the dumps take where they land: bytes, count, free space.

A dump is one entry of the storage root whose name starts with the pattern's
fixed prefix (``dt-`` for ``.../dt-%d-cid-%c``). Walks are bounded so a root
with millions of files cannot stall a fleet run.
"""

from __future__ import annotations

import os
import stat

MAX_ENTRIES = 200000


def _free_bytes(path):
    probe = path
    while probe and not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    try:
        st = os.statvfs(probe or "/")
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def measure(root, name_prefix="", max_entries=MAX_ENTRIES):
    """{path, name_prefix, exists, bytes, count, free_bytes, truncated} for one root.

    Symlinks are counted as entries but never followed.
    """
    report = {
        "path": root,
        "name_prefix": name_prefix,
        "exists": False,
        "bytes": 0,
        "count": 0,
        "free_bytes": _free_bytes(root),
        "truncated": False,
        "error": None,
    }
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return report
    except OSError as exc:
        report["exists"] = True
        report["error"] = exc.strerror
        return report
    report["exists"] = True
    seen = 0
    for name in names:
        if not name.startswith(name_prefix):
            continue
        report["count"] += 1
        stack = [os.path.join(root, name)]
        while stack:
            path = stack.pop()
            seen += 1
            if seen > max_entries:
                report["truncated"] = True
                return report
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                try:
                    stack.extend(os.path.join(path, child) for child in os.listdir(path))
                except OSError:
                    continue
            elif stat.S_ISREG(st.st_mode):
                report["bytes"] += st.st_size
    return report
