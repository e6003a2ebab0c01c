"""``neuron-core-dump status``: one dict answering "is this host capturing and uploading dumps?".

The keys below are a contract (the collection's info module parses ``status --json``)::

    {"spool_depth": int, "pending_dumps": int, "last_error": str|null,
     "last_success": str|null, "uploader": {"healthy": bool, "detail": str},
     "storage": {"bytes": int, "count": int, "free_bytes": int, "roots": [...]},
     "config_ok": bool}

Extra keys may be added (``config_error``, ``last_error_at``, ``hard_cap_deletions``).
"""

import importlib.util
import os
import time

from . import config as config_mod
from . import dumps as dumps_mod
from . import fastjson, fsutil, spool, state


def _incoming_entries(spool_dir):
    """(count, set of dump dirs) of incoming entries; (-1, set()) when unreadable (not root)."""
    try:
        fd = fsutil.walk(os.path.join(spool_dir, spool.INCOMING))
    except OSError:
        return 0, set()
    dirs = set()
    count = 0
    try:
        for name in os.listdir(fd):
            if name.startswith("."):
                continue
            count += 1
            try:
                dirs.add(spool.validate_entry(fastjson.load_file(fd, name, spool.MAX_ENTRY_BYTES))["dump_dir"])
            except (OSError, ValueError):
                continue
    except OSError:
        return -1, set()
    finally:
        os.close(fd)
    return count, dirs


def collect(config_path):
    config_error = None
    try:
        config = config_mod.read(config_path)
    except config_mod.ConfigError as exc:
        config_error = "%s: %s" % (exc.key, exc.rule)
        config = config_mod.defaults()
    incoming_count, incoming_dirs = _incoming_entries(config["spool_dir"])
    queued = dumps_mod.load_queue_entries(config["spool_dir"])
    queued_dirs = {q.get("entry", {}).get("dump_dir") for q in queued}
    saved = state.read_status(config["state_dir"])
    all_dumps, roots = dumps_mod.scan(config, with_state=False)
    free_values = [r["free_bytes"] for r in roots if r["free_bytes"] is not None]

    healthy, detail = _uploader_health(config, config_error, queued, incoming_count)
    result = {
        "spool_depth": max(incoming_count, 0) + len(queued),
        "pending_dumps": len(queued_dirs | incoming_dirs),
        "last_error": saved.get("last_error"),
        "last_success": saved.get("last_success"),
        "uploader": {"healthy": healthy, "detail": detail},
        "storage": {
            "bytes": sum(d.bytes for d in all_dumps),
            "count": len(all_dumps),
            "free_bytes": min(free_values) if free_values else 0,
            "roots": roots,
        },
        "config_ok": config_error is None,
        "config_error": config_error,
        "last_error_at": saved.get("last_error_at"),
        "last_run": saved.get("last_run"),
        "hard_cap_deletions": saved.get("hard_cap_deletions") or [],
    }
    return result


def _uploader_health(config, config_error, queued, incoming_count):
    problems = []
    if config_error:
        problems.append("config invalid: %s" % config_error)
    if importlib.util.find_spec("boto3") is None:
        problems.append("boto3 is not importable by this python")
    if incoming_count < 0:
        problems.append("spool not readable (run as root for full status)")
    now_ns = time.time_ns()
    stale_ns = int(config["uploader"]["stale_after_seconds"] * 1e9)
    stale = [q for q in queued if now_ns - int(q.get("claimed_ns") or now_ns) > stale_ns]
    failing = [q for q in queued if q.get("last_error")]
    if stale:
        problems.append(
            "%d queued entr%s older than %ss"
            % (len(stale), "y" if len(stale) == 1 else "ies", config["uploader"]["stale_after_seconds"])
        )
    if failing:
        problems.append(
            "%d entr%s failing, latest: %s"
            % (len(failing), "y" if len(failing) == 1 else "ies", failing[-1]["last_error"][:300])
        )
    if problems:
        return False, "; ".join(problems)
    if queued or incoming_count > 0:
        return True, "ok; %d entr%s waiting" % (
            len(queued) + max(incoming_count, 0),
            "y" if len(queued) + max(incoming_count, 0) == 1 else "ies",
        )
    return True, "ok"


def human(status):
    lines = [
        "config:        %s" % ("ok" if status["config_ok"] else "INVALID (%s)" % status["config_error"]),
        "uploader:      %s (%s)"
        % ("healthy" if status["uploader"]["healthy"] else "UNHEALTHY", status["uploader"]["detail"]),
        "spool depth:   %d entries, %d dump(s) pending upload" % (status["spool_depth"], status["pending_dumps"]),
        "last success:  %s" % (status["last_success"] or "never"),
        "last error:    %s" % (status["last_error"] or "none"),
        "storage:       %d dump(s), %s, %s free"
        % (
            status["storage"]["count"],
            _size(status["storage"]["bytes"]),
            _size(status["storage"]["free_bytes"]),
        ),
    ]
    for root in status["storage"]["roots"]:
        if root["exists"]:
            lines.append("  %-40s %d dump(s) %s" % (root["path"], root["count"], _size(root["bytes"])))
        else:
            lines.append("  %-40s (missing)" % root["path"])
    for item in status["hard_cap_deletions"][-5:]:
        lines.append("DELETED BEFORE UPLOAD at %s: %s" % (item.get("at"), item.get("path")))
    return "\n".join(lines)


def _size(value):
    value = float(value or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return "%.0f %s" % (value, unit) if unit == "B" else "%.1f %s" % (value, unit)
        value /= 1024
    return "%d B" % value
