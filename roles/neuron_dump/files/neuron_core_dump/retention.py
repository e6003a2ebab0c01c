"""Retention (``neuron-core-dump gc``): keep dump storage within caps, uploaded dumps first.

Soft limits (``max_bytes``, ``max_count``, ``keep_free_bytes`` per file system):
while one is exceeded, delete uploaded dumps, then local-only dumps, oldest first,
skipping dumps younger than ``min_age_seconds`` (probably still being written).

Hard limits (``hard_max_bytes``, ``hard_keep_free_bytes``): only past these is a dump
that still waits for its upload deleted (oldest first). That loses data, so it is
logged at LOG_CRIT and remembered in ``status.json`` (``hard_cap_deletions``).

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


def plan(all_dumps, roots, limits, now=None):
    """Decide what to delete: a list of (dump, hard?, reasons), in deletion order."""
    now = time.time() if now is None else now
    usage = _Usage(all_dumps, roots)
    oldest_first = sorted(all_dumps, key=lambda d: (d.newest_mtime, d.path))
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
    for wanted in (dumps_mod.UPLOADED, dumps_mod.LOCAL, dumps_mod.PENDING):
        for dump in oldest_first:
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
    decisions = plan(all_dumps, roots, limits)
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
        _clean_spool(config, logger)
        if report["hard_cap_deletions"]:
            _remember_hard_cap(config, report["hard_cap_deletions"], logger)
    return report


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
    if not dump.queued:
        return
    try:
        queue_fd = fsutil.walk(os.path.join(config["spool_dir"], spool.QUEUE))
    except OSError:
        return
    try:
        for name in os.listdir(queue_fd):
            if not name.endswith(".json"):
                continue
            try:
                from . import fastjson

                entry = fastjson.load_file(queue_fd, name, spool.MAX_ENTRY_BYTES * 2).get("entry", {})
            except (OSError, ValueError, AttributeError):
                continue
            if fsutil.is_under(entry.get("dump_dir", ""), dump.path):
                spool.remove_queue_entry(queue_fd, name)
    finally:
        os.close(queue_fd)


def _clean_spool(config, logger):
    cutoff = time.time() - STALE_TMP_SECONDS
    for sub in (spool.INCOMING, spool.QUEUE):
        try:
            fd = fsutil.walk(os.path.join(config["spool_dir"], sub))
        except OSError:
            continue
        try:
            for name in os.listdir(fd):
                if not name.startswith("."):
                    continue
                try:
                    if os.lstat(name, dir_fd=fd).st_mtime < cutoff:
                        os.unlink(name, dir_fd=fd)
                        logger.info("gc: removed abandoned spool file %s/%s" % (sub, name))
                except OSError:
                    continue
        finally:
            os.close(fd)


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
