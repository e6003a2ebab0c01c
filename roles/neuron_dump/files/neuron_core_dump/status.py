"""``neuron-core-dump status``: one dict answering "is this host capturing and uploading dumps?".

The keys below are a contract (the collection's info module parses ``status --json``)::

    {"spool_depth": int, "pending_dumps": int, "last_error": str|null,
     "last_success": str|null, "uploader": {"healthy": bool, "detail": str},
     "storage": {"bytes": int, "count": int, "free_bytes": int, "roots": [...]},
     "config_ok": bool}

Extra keys may be added (``config_error``, ``last_error_at``, ``hard_cap_deletions``,
``failing_entries``, ``held_dumps``, ``refused``, ``queue_by_uid``, ``exact``).

Cheap at any spool depth: below ``EXACT_LIMIT`` entries it reads the spool, above it
answers from the summary the uploader writes after every pass (``status.json``), and
storage from gc's last measurement. ``uploader.healthy`` is false only when the
uploader is broken (config, boto3, every upload failing on S3, not running while dumps
wait); dumps refused by policy or by S3 (bucket missing) and dumps held by the per-uid
limits are counted and listed, and leave the host healthy.
"""

import os
import sys
import time

from . import adopt, fsutil, keys, spool, state
from . import config as config_mod

# below this many spool entries (and dumps) status reads them itself for exact numbers;
# above, it answers from the summary the uploader keeps in status.json (cheap at any depth)
EXACT_LIMIT = 200


def collect(config_path):
    config_error = None
    try:
        config = config_mod.read(config_path)
    except config_mod.ConfigError as exc:
        config_error = "%s: %s" % (exc.key, exc.rule)
        config = config_mod.defaults()
    incoming_count, queue_count = spool.count_entries(config["spool_dir"])
    saved = state.read_status(config["state_dir"])
    summary = saved.get("queue") or {}
    exact = queue_count <= EXACT_LIMIT and incoming_count <= EXACT_LIMIT
    incoming_dirs = spool.incoming_dump_dirs(config["spool_dir"], EXACT_LIMIT) if exact else None
    if incoming_dirs is not None:
        queued = spool.read_queue(config["spool_dir"])
        pending = len({q["entry"].get("dump_dir") for q in queued} | incoming_dirs)
        failing = [q.get("last_error") for q in queued if q.get("last_error")]
        failing_count = len(failing)
        latest_failure = failing[-1] if failing else None
    else:  # a deep spool: the uploader's numbers of its last pass, plus what arrived since (upper bound)
        pending = int(summary.get("dumps") or 0) + max(incoming_count, 0)
        failing_count = int(summary.get("failing") or 0)
        latest_failure = saved.get("last_error") if failing_count else None
    storage = _storage(config, saved)
    healthy, detail = _uploader_health(
        config, config_error, saved, incoming_count, queue_count, pending, failing_count, latest_failure
    )
    refused = saved.get("refused") or {"total": 0, "recent": []}
    return keys.clean(
        {
            "spool_depth": max(incoming_count, 0) + queue_count,
            "pending_dumps": pending,
            "last_error": saved.get("last_error"),
            "last_success": saved.get("last_success"),
            "uploader": {"healthy": healthy, "detail": detail},
            "storage": storage,
            "config_ok": config_error is None,
            "config_error": config_error,
            "last_error_at": saved.get("last_error_at"),
            "last_run": saved.get("last_run"),
            "hard_cap_deletions": saved.get("hard_cap_deletions") or [],
            "failing_entries": failing_count,
            "held_dumps": int(saved.get("held") or 0),
            "refused": {"total": int(refused.get("total") or 0), "recent": refused.get("recent") or []},
            "queue_by_uid": summary.get("by_uid") or {},
            "exact": incoming_dirs is not None,
            "containers": _containers(config),
        }
    )


# --- the summary, written by the uploader after every pass ----------------------------------------

REFUSED_HISTORY = 20


def record_pass(store, result, entries, logger):
    """Write the uploader's summary of one pass (``result``: uploader.RunResult; ``entries``: the queue
    after it) into ``status.json``: what :func:`collect` answers from on a deep spool."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    by_uid = {}
    dirs = set()
    failing = 0
    for queued in entries.values():
        dirs.add(queued["entry"]["dump_dir"])
        uid = str(queued.get("uid", -1))
        by_uid[uid] = by_uid.get(uid, 0) + 1
        failing += 1 if queued.get("last_error") else 0

    def change(summary):
        summary["last_run"] = now
        summary["last_run_ns"] = time.time_ns()
        if result.errors:
            summary["last_error"] = keys.display(result.errors[-1][:2000])
            summary["last_error_at"] = now
        elif result.groups_done and not result.groups_deferred:
            summary["last_error"] = None  # everything queued went through: the old error is resolved
        if result.uploaded or result.successes:
            summary["last_success"] = now
        if result.successes:
            summary["broken"] = None
        elif result.remote_failures:
            summary["broken"] = "every upload is failing on S3: %s" % keys.display(
                sorted(result.remote_failures.items())[0][1][:500]
            )
            summary["broken_since"] = summary.get("broken_since") or now
        if not entries:
            summary["broken"] = None  # nothing waits (uploaded, refused or deleted): nothing is failing
        if not summary.get("broken"):
            summary["broken_since"] = None
        summary["queue"] = {"entries": len(entries), "dumps": len(dirs), "by_uid": by_uid, "failing": failing}
        summary["held"] = result.held
        refused = summary.get("refused") or {"total": 0, "recent": []}
        refused["total"] = int(refused.get("total") or 0) + result.refused
        recent = (refused.get("recent") or []) + [dict(r, at=now) for r in result.refusals]
        refused["recent"] = recent[-REFUSED_HISTORY:]
        summary["refused"] = refused
        summary["last_result"] = result.as_dict()

    try:
        store.update_status(change)
    except Exception as exc:  # status is informational; the upload itself is done
        logger.warning("cannot update status: %s" % exc)


def _containers(config):
    """Adoption of container dumps (adopt.py): the last run's counts, or None when off."""
    if not adopt.enabled(config):
        return None
    return dict(adopt.read_status(config["state_dir"]), area=config["containers"]["area"])


def _storage(config, saved):
    """Usage of the dump roots: walked when there are few dumps, else gc's last numbers + live counts."""
    counts = []
    for root in config["dump_roots"]:
        try:
            fd = fsutil.walk(root)
        except OSError:
            counts.append(None)  # missing
            continue
        try:
            counts.append(len(os.listdir(fd)))
        except OSError:
            counts.append(0)
        finally:
            os.close(fd)
    snapshot = saved.get("storage")
    if sum(c or 0 for c in counts) > EXACT_LIMIT:
        if not isinstance(snapshot, dict):  # gc has not measured yet: counts and free space only
            snapshot = {"bytes": 0, "roots": [], "at": None}
        roots = []
        for root, count in zip(config["dump_roots"], counts):
            known = next((r for r in snapshot.get("roots", []) if r.get("path") == root), {})
            item = {"bytes": 0}
            item.update(known)
            item.update({"path": root, "exists": count is not None, "count": count or 0, "free_bytes": _free(root)})
            roots.append(item)
        free_values = [r["free_bytes"] for r in roots if r["free_bytes"] is not None]
        return {
            "bytes": int(snapshot.get("bytes") or 0),
            "count": sum(c or 0 for c in counts),
            "free_bytes": min(free_values) if free_values else 0,
            "roots": roots,
            "measured_at": snapshot.get("at"),
        }
    from . import dumps as dumps_mod  # not at the top: only for a walk of few dumps (not on a deep spool)

    all_dumps, roots = dumps_mod.scan(config, with_state=False)
    free_values = [r["free_bytes"] for r in roots if r["free_bytes"] is not None]
    return {
        "bytes": sum(d.bytes for d in all_dumps),
        "count": len(all_dumps),
        "free_bytes": min(free_values) if free_values else 0,
        "roots": roots,
    }


def _free(path):
    try:
        vfs = os.statvfs(path)
    except OSError:
        return None
    return vfs.f_bavail * vfs.f_frsize


def _uploader_health(config, config_error, saved, incoming_count, queue_count, pending, failing, latest):
    """(healthy, detail). Unhealthy only when the uploader itself is broken; refusals and quota are counted."""
    problems = []
    if config_error:
        problems.append("config invalid: %s" % config_error)
    if not _boto3_installed():
        problems.append("boto3 is not importable by this python")
    if incoming_count < 0:
        problems.append("spool not readable (run as root for full status)")
    if saved.get("broken"):
        problems.append("%s (since %s)" % (saved["broken"], saved.get("broken_since") or "?"))
    stale = config["uploader"]["stale_after_seconds"]
    if pending and _not_running_for(config, saved) > stale:
        problems.append("%d dump(s) waiting and the uploader has not run for more than %ss" % (pending, stale))
    if problems:
        return False, "; ".join(problems)
    notes = []
    waiting = queue_count + max(incoming_count, 0)
    if waiting:
        notes.append("%d entr%s waiting" % (waiting, "y" if waiting == 1 else "ies"))
    if failing:
        notes.append("%d entr%s failing, latest: %s" % (failing, "y" if failing == 1 else "ies", (latest or "")[:300]))
    held = int(saved.get("held") or 0)
    if held:
        notes.append("%d dump(s) held by the per-uid limits" % held)
    refused = (saved.get("refused") or {}).get("recent") or []
    if refused:
        notes.append(
            "%d dump(s) refused, latest: %s"
            % (int(saved["refused"].get("total") or 0), refused[-1].get("reason", "")[:300])
        )
    return True, "ok" + ("; " + "; ".join(notes) if notes else "")


def _boto3_installed():
    """Whether ``import boto3`` would find it: a path check (importlib.util costs more than status
    itself), on sys.path plus the site-packages ``site.main()`` would add (``cli`` answers status
    without running it)."""
    paths = [entry for entry in sys.path if isinstance(entry, str)]
    if sys.flags.no_site:
        import site  # with -S importing site runs nothing; only its path list is wanted here

        paths.extend(site.getsitepackages())
        # A venv's interpreter: before Python 3.11 it is site.main() (site.venv) that finds the
        # pyvenv.cfg and adds the venv's site-packages; under -S sys.prefix is still the base's.
        exe_dir = os.path.dirname(os.path.abspath(sys.executable))
        venv = os.path.dirname(exe_dir)
        if any(os.path.isfile(os.path.join(d, "pyvenv.cfg")) for d in (exe_dir, venv)):
            # Both: Debian's patched getsitepackages() names only dist-packages dirs unless
            # sys.prefix is the venv's, which under -S it is not.
            paths.append(os.path.join(venv, "lib", "python%d.%d" % sys.version_info[:2], "site-packages"))
            paths.extend(site.getsitepackages([venv]))
    return any(os.path.isfile(os.path.join(entry or ".", "boto3", "__init__.py")) for entry in paths)


def _not_running_for(config, saved):
    """Seconds since the uploader last ran, or since work arrived when it never ran."""
    last = saved.get("last_run_ns")
    now = time.time_ns()
    if isinstance(last, int):
        return (now - last) / 1e9
    arrived = spool.last_arrival(config["spool_dir"])  # never ran: since the newest entry arrived
    return 0 if arrived is None else time.time() - arrived


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
    if status.get("held_dumps"):
        lines.append("held:          %d dump(s) wait for their uid's limits" % status["held_dumps"])
    for item in (status.get("refused") or {}).get("recent", [])[-5:]:
        lines.append(
            "REFUSED at %s: %s (uid %s): %s"
            % (item.get("at"), item.get("dump_dir"), item.get("uid"), item.get("reason"))
        )
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
