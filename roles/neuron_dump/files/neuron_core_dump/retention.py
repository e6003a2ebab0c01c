"""Retention (``neuron-core-dump gc``): keep dump storage within caps, uploaded dumps first.

Soft limits (``max_bytes``, ``max_count``, ``keep_free_bytes`` per file system):
while one is exceeded, delete uploaded dumps, then local-only dumps, oldest first,
skipping dumps younger than ``min_age_seconds`` (probably still being written).

Hard limits (``hard_max_bytes``, ``hard_keep_free_bytes``): only past these is a dump
that still waits for its upload deleted (oldest first). That loses data, so it is
logged at LOG_CRIT and remembered in ``status.json`` (``hard_cap_deletions``).

Floods: a uid is *over quota* when it has more pending dumps than
``uploader.max_pending_dumps_per_uid`` or is past ``uploader.max_bytes_per_uid_per_hour``.
Over-quota uids' dumps go first at every step, and past the hard cap only their
pending dumps are deleted (newest first: the first dumps of a failure storm tell the
most), never another uid's un-uploaded dump, which waits until there is room.

Also cleans up: abandoned ``.ncd-tmp-*`` files in the spool (hooks killed mid-write),
queue entries and uploader state of dumps that no longer exist.
"""

import os
import time

from . import dumps as dumps_mod
from . import fsutil, log, spool, state

STALE_TMP_SECONDS = 3600
HARD_CAP_HISTORY = 20


class _Usage:
    def __init__(self, all_dumps, roots):
        self.total = sum(d.bytes for d in all_dumps)
        self.count = len(all_dumps)
        self.free = {}  # st_dev -> free bytes
        for dump in all_dumps:
            if dump.dev is not None and dump.dev not in self.free:
                self.free[dump.dev] = None
        for info in roots:
            if info["exists"] and info["free_bytes"] is not None:
                try:
                    dev = os.stat(info["path"]).st_dev
                except OSError:
                    continue
                self.free[dev] = info["free_bytes"]

    def free_on(self, dev):
        value = self.free.get(dev)
        return float("inf") if value is None else value

    def removed(self, dump):
        self.total -= dump.bytes
        self.count -= 1
        if self.free.get(dump.dev) is not None:
            self.free[dump.dev] += dump.bytes


def _reasons(usage, dump, limits, hard):
    if hard:
        reasons = []
        if usage.total > limits["hard_max_bytes"]:
            reasons.append("total %d > hard_max_bytes %d" % (usage.total, limits["hard_max_bytes"]))
        if usage.free_on(dump.dev) < limits["hard_keep_free_bytes"]:
            reasons.append(
                "free %d < hard_keep_free_bytes %d" % (usage.free_on(dump.dev), limits["hard_keep_free_bytes"])
            )
        return reasons
    reasons = []
    if usage.total > limits["max_bytes"]:
        reasons.append("total %d > max_bytes %d" % (usage.total, limits["max_bytes"]))
    if usage.count > limits["max_count"]:
        reasons.append("count %d > max_count %d" % (usage.count, limits["max_count"]))
    if usage.free_on(dump.dev) < limits["keep_free_bytes"]:
        reasons.append("free %d < keep_free_bytes %d" % (usage.free_on(dump.dev), limits["keep_free_bytes"]))
    return reasons


def plan(all_dumps, roots, limits, now=None, over_quota=()):
    """Decide what to delete: a list of (dump, hard?, reasons), in deletion order.

    ``over_quota``: uids whose dumps are evicted first (and alone, among pending dumps).
    """
    now = time.time() if now is None else now
    over = set(over_quota)
    usage = _Usage(all_dumps, roots)
    oldest_first = sorted(
        all_dumps, key=lambda d: (0 if getattr(d, "uid", None) in over else 1, d.newest_mtime, d.path)
    )
    decisions = []
    chosen = set()
    # soft caps: uploaded, then local-only, old enough
    for wanted in (dumps_mod.UPLOADED, dumps_mod.LOCAL):
        for dump in oldest_first:
            if dump.status != wanted or now - dump.newest_mtime < limits["min_age_seconds"]:
                continue
            reasons = _reasons(usage, dump, limits, hard=False)
            if reasons:
                decisions.append((dump, False, reasons))
                chosen.add(dump.path)
                usage.removed(dump)
    # hard caps: anything left, uploaded/local first, then pending; age no longer protects
    flooders_newest_first = sorted(
        (d for d in all_dumps if getattr(d, "uid", None) in over), key=lambda d: (-d.newest_mtime, d.path)
    )
    for wanted in (dumps_mod.UPLOADED, dumps_mod.LOCAL, dumps_mod.PENDING):
        candidates = flooders_newest_first if wanted == dumps_mod.PENDING and over else oldest_first
        for dump in candidates:
            if dump.status != wanted or dump.path in chosen:
                continue
            reasons = _reasons(usage, dump, limits, hard=True)
            if reasons:
                decisions.append((dump, True, reasons))
                chosen.add(dump.path)
                usage.removed(dump)
    return decisions


def run(config, dry_run=False, logger=log):
    """Apply retention. Returns a report dict."""
    limits = config["retention"]
    all_dumps, roots = dumps_mod.scan(config)
    decisions = plan(all_dumps, roots, limits, over_quota=over_quota_uids(config, all_dumps))
    report = {"deleted": [], "hard_cap_deletions": [], "errors": [], "dry_run": dry_run}
    for dump, _hard, reasons in decisions:
        item = {"path": dump.path, "status": dump.status, "bytes": dump.bytes, "reasons": reasons}
        lost = dump.status == dumps_mod.PENDING
        if not dry_run:
            try:
                _delete(dump)
            except OSError as exc:
                report["errors"].append("%s: %s" % (dump.path, exc))
                logger.error("gc: cannot delete %s: %s" % (dump.path, exc))
                continue
            _forget(config, dump)
        report["deleted"].append(item)
        if lost:
            report["hard_cap_deletions"].append(item)
            logger.crit(
                "gc: deleted dump %s BEFORE it was uploaded (%d bytes): hard cap reached (%s)"
                % (dump.path, dump.bytes, "; ".join(reasons))
            )
        else:
            logger.notice(
                "gc: deleted %s dump %s (%d bytes): %s" % (dump.status, dump.path, dump.bytes, "; ".join(reasons))
            )
    if not dry_run:
        _remember_storage(config, all_dumps, roots, report["deleted"])
        _clean_spool(config, logger)
        if report["hard_cap_deletions"]:
            _remember_hard_cap(config, report["hard_cap_deletions"], logger)
    return report


def over_quota_uids(config, all_dumps):
    """uids past ``max_pending_dumps_per_uid`` pending dumps or past their hourly byte quota."""
    settings = config["uploader"]
    pending = {}
    for dump in all_dumps:
        if dump.status == dumps_mod.PENDING:
            pending[dump.uid] = pending.get(dump.uid, 0) + 1
    over = {uid for uid, count in pending.items() if count > settings["max_pending_dumps_per_uid"]}
    if settings["max_bytes_per_uid_per_hour"]:
        try:
            store = state.Store(config["state_dir"])
        except OSError:
            return over
        try:
            over |= store.uids_over_byte_quota(settings["max_bytes_per_uid_per_hour"]) & set(pending)
        finally:
            store.close()
    return over


def _delete(dump):
    root_fd = fsutil.walk(dump.root)
    try:
        fsutil.remove_tree(root_fd, dump.name)
    finally:
        os.close(root_fd)


def _forget(config, dump):
    """Drop uploader state and queue entries of a deleted dump (root only; silently skipped otherwise)."""
    for dump_state in dump.states:
        try:
            store = state.Store(config["state_dir"])
        except OSError:
            break
        try:
            store.forget_dump(dump_state["dump_dir"])
        finally:
            store.close()
    if dump.queued:
        spool.remove_entries_below(config["spool_dir"], dump.path)


def _clean_spool(config, logger):
    try:
        with spool.Spool(config["spool_dir"]) as handle:
            handle.clean_stale(time.time() - STALE_TMP_SECONDS, logger)
    except OSError:
        return


def _remember_storage(config, all_dumps, roots, deleted):
    """Usage after this run, for ``status`` on hosts with many dumps (root only; skipped otherwise)."""
    try:
        store = state.Store(config["state_dir"])
    except OSError:
        return
    gone = {item["path"] for item in deleted}
    kept = [d for d in all_dumps if d.path not in gone]
    snapshot = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "bytes": sum(d.bytes for d in kept),
        "count": len(kept),
        "roots": [
            {"path": r["path"], "exists": r["exists"], "bytes": sum(d.bytes for d in kept if d.root == r["path"])}
            for r in roots
        ],
    }

    def change(status):
        status["storage"] = snapshot

    try:
        store.update_status(change)
    except OSError:
        pass
    finally:
        store.close()


def _remember_hard_cap(config, items, logger):
    try:
        store = state.Store(config["state_dir"])
    except OSError as exc:
        logger.error("gc: cannot record hard-cap deletions in status: %s" % exc)
        return
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def change(status):
        history = status.get("hard_cap_deletions") or []
        history.extend({"at": now, "path": i["path"], "bytes": i["bytes"], "reasons": i["reasons"]} for i in items)
        status["hard_cap_deletions"] = history[-HARD_CAP_HISTORY:]
        status["last_error"] = "gc deleted %d dump(s) before upload (hard cap): %s" % (
            len(items),
            ", ".join(i["path"] for i in items)[:1500],
        )
        status["last_error_at"] = now

    try:
        store.update_status(change)
    finally:
        store.close()
