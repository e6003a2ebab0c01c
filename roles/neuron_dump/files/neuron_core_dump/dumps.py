"""Find the dumps on this host and classify them (for ``list``, ``info``, ``gc``, ``status``).

A *dump* is a direct child directory of a configured dump root (the runtime's
``<root>/dt-%d-cid-%c``). Its upload state comes from the uploader's state files
and queue; a dump is

``pending``   a queued entry still refers to it (or to a dir below it);
``uploaded``  every S3 prefix it was sent to has a manifest, no multipart upload is
              open and every file now in it was uploaded;
``local``     anything else: no S3 prefix, never enqueued (e.g. made by the vendor
              helper alone), or refused by the uploader.

:func:`describe` is the one description of a dump that ``list --json``, ``info --json``,
``core_dump_info`` (which runs ``list --json``) and the notification all give: the fields
above plus what :mod:`dumpmeta` reads from the dump, the origin and the upload state as
``uploaded`` / ``pending`` / ``failed`` (queued, with the last error) / ``local_only``.
"""

import os
import pwd
import stat
import time

from . import fsutil, spool, state

PENDING = "pending"
UPLOADED = "uploaded"
LOCAL = "local"
# upload states of describe(): PENDING and UPLOADED, and
FAILED = "failed"
LOCAL_ONLY = "local_only"
RUNTIME_DEFAULT_NAME = "dt-%d-cid-%c"  # docs/runtime-contract.md 2.3


class Dump:
    def __init__(self, root, name, info):
        self.root = root
        self.name = name
        self.path = os.path.join(root, name)
        self.uid = info.st_uid
        self.bytes = 0
        self.newest_mtime = info.st_mtime
        self.files = []  # (name, size) of regular files directly inside
        self.states = []  # uploader state dicts of dump dirs at or below this dump
        self.queued = []  # queue entries referring to it
        self.status = LOCAL
        self.dev = None

    def as_dict(self):
        prefixes = {}
        for dump_state in self.states:
            for prefix, prefix_state in dump_state.get("prefixes", {}).items():
                prefixes[prefix] = {
                    "files_uploaded": len(prefix_state.get("files", {})),
                    "files_skipped": len(prefix_state.get("skipped", {})),
                    "manifest": (prefix_state.get("manifest") or {}).get("key"),
                    "multipart_open": len(prefix_state.get("multipart", {})),
                }
        errors = [q.get("last_error") for q in self.queued if q.get("last_error")]
        refused = [s.get("refused") for s in self.states if s.get("refused")]
        return {
            "name": self.name,
            "path": self.path,
            "root": self.root,
            "uid": self.uid,
            "status": self.status,
            "bytes": self.bytes,
            "file_count": len(self.files),
            "newest_mtime": self.newest_mtime,
            "s3": prefixes,
            "queued_entries": len(self.queued),
            "last_error": errors[-1] if errors else None,
            "refused": refused[-1] if refused else None,
        }


def scan_root(root):
    """(dumps, root info dict) of one root; a missing root gives no dumps."""
    info = {"path": root, "exists": False, "bytes": 0, "count": 0, "free_bytes": None}
    try:
        root_fd = fsutil.walk(root)
    except OSError:
        return [], info
    found = []
    try:
        info["exists"] = True
        vfs = os.fstatvfs(root_fd)
        info["free_bytes"] = vfs.f_bavail * vfs.f_frsize
        dev = os.fstat(root_fd).st_dev
        try:
            names = sorted(os.listdir(root_fd))
        except OSError as exc:  # a 1733 root cannot be listed by users: only root sees every dump
            info["error"] = "cannot list (%s); run as root" % exc.strerror
            names = []
        for name in names:
            dump = _load(root_fd, root, name, dev)
            if dump is not None:
                found.append(dump)
    finally:
        os.close(root_fd)
    info["count"] = len(found)
    info["bytes"] = sum(d.bytes for d in found)
    return found, info


def _load(root_fd, root, name, dev):
    """The Dump ``name`` below the open root, or None when it is not a directory (never followed)."""
    try:
        entry_info = os.lstat(name, dir_fd=root_fd)
    except OSError:
        return None
    if not stat.S_ISDIR(entry_info.st_mode):
        return None  # symlinks and stray files are not dumps (and are never followed)
    dump = Dump(root, name, entry_info)
    dump.dev = dev
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
    except OSError:
        return dump
    try:
        dump.bytes, newest = fsutil.dir_usage(fd)
        dump.newest_mtime = max(dump.newest_mtime, newest)
        for child in os.listdir(fd):
            try:
                child_info = os.lstat(child, dir_fd=fd)
            except OSError:
                continue
            if stat.S_ISREG(child_info.st_mode) and not child.startswith("."):
                dump.files.append((child, child_info.st_size, child_info.st_mtime_ns))
    finally:
        os.close(fd)
    return dump


def load_one(config, dump_dir, dump_state=None):
    """The Dump at ``dump_dir`` (a direct child of a dump root) with ``dump_state``, or None.

    For the notification: one dump without scanning every root; its upload was just done.
    """
    root = fsutil.find_root(dump_dir, config["dump_roots"])
    try:
        relative = fsutil.split_components(dump_dir)[len(fsutil.split_components(root or "/")) :]
        root_fd = fsutil.walk(root) if root and relative else None
    except OSError:
        return None
    if root_fd is None:
        return None
    try:
        dump = _load(root_fd, root, relative[0], os.fstat(root_fd).st_dev)
    finally:
        os.close(root_fd)
    if dump is not None and dump_state is not None:
        dump.states.append(dump_state)
        dump.status = classify(dump)
    return dump


def load_queue_entries(spool_dir):
    """Queue entries (root only); [] when the queue cannot be read."""
    return spool.read_queue(spool_dir)


def load_states(state_dir):
    try:
        store = state.Store(state_dir) if os.geteuid() == 0 else None
    except OSError:
        store = None
    if store is None:
        return _read_states_readonly(state_dir)
    try:
        return store.all_dumps()
    finally:
        store.close()


def _read_states_readonly(state_dir):
    try:
        fd = fsutil.walk(os.path.join(state_dir, state.UPLOADS))
    except OSError:
        return []
    result = []
    try:
        for name in os.listdir(fd):
            if name.endswith(".json") and not name.startswith("."):
                try:
                    data = fsutil.load_json(fd, name, state.MAX_STATE_BYTES)
                    if isinstance(data, dict) and isinstance(data.get("dump_dir"), str):
                        result.append(data)
                except (OSError, ValueError):
                    continue
    except OSError:
        pass
    finally:
        os.close(fd)
    return result


def classify(dump):
    if dump.queued:
        return PENDING
    complete_prefixes = 0
    for dump_state in dump.states:
        for prefix_state in dump_state.get("prefixes", {}).values():
            if prefix_state.get("multipart") or not prefix_state.get("manifest"):
                return LOCAL
            complete_prefixes += 1
            uploaded = prefix_state.get("files", {})
            if dump_state.get("dump_dir") == dump.path:
                for name, size, _mtime in dump.files:
                    if name.endswith("-manifest.json"):
                        continue
                    known = uploaded.get(name)
                    if name in prefix_state.get("skipped", {}):
                        continue  # recorded in the manifest as not uploadable
                    if not known or known.get("size") != size:
                        return LOCAL
    return UPLOADED if complete_prefixes else LOCAL


def scan(config, with_state=True):
    """(dumps, roots info). Dumps carry their state and classification when readable."""
    dumps = []
    roots = []
    for root in config["dump_roots"]:
        found, info = scan_root(root)
        dumps.extend(found)
        roots.append(info)
    if with_state:
        by_path = {d.path: d for d in dumps}
        for dump_state in load_states(config["state_dir"]):
            owner = _owner_dump(dump_state["dump_dir"], by_path)
            if owner is not None:
                owner.states.append(dump_state)
        for queued in load_queue_entries(config["spool_dir"]):
            owner = _owner_dump(queued.get("entry", {}).get("dump_dir", ""), by_path)
            if owner is not None:
                owner.queued.append(queued)
        for dump in dumps:
            dump.status = classify(dump)
    return dumps, roots


def _owner_dump(dump_dir, by_path):
    try:
        parts = fsutil.split_components(dump_dir)
    except fsutil.UnsafePathError:
        return None
    for length in range(len(parts), 0, -1):
        candidate = "/" + "/".join(parts[:length])
        if candidate in by_path:
            return by_path[candidate]
    return None


def find(config, name_or_path):
    """The dump named ``name_or_path`` (a path, or a name under any root), or None."""
    dumps, _unused = scan(config)
    for dump in dumps:
        if name_or_path in (dump.path, dump.name) or name_or_path.rstrip("/") == dump.path:
            return dump
    return None


# --- the one description of a dump ------------------------------------------------------------


def name_matchers(config):
    """Regexes of the dump-dir names whose ``%d``/``%c`` parts give the job: the configured
    fallback pattern and the runtime's default name."""
    from . import dumpmeta  # not at the top: ``status`` scans dumps without describing them (``re``)

    matchers = []
    for template in (config["hook"]["fallback_dump_dir"], RUNTIME_DEFAULT_NAME):
        matcher = dumpmeta.name_matcher(template)
        if matcher is not None and matcher.pattern not in [m.pattern for m in matchers]:
            matchers.append(matcher)
    return matchers


def newest_first(found):
    return sorted(found, key=lambda d: (-d.newest_mtime, d.name))


def describe(dump, matchers, user_name=None):
    """as_dict() plus job, error, NEFF, ids, origin and upload state (see the module docstring)."""
    from . import dumpmeta  # see name_matchers

    data = dump.as_dict()
    meta = dumpmeta.read(dump.path, dump.files, matchers)
    details = meta.as_dict()
    stamp = meta.time_ns / 1e9 if meta.time_ns is not None else dump.newest_mtime
    data.update(
        job_key=dumpmeta.job_key(meta.d, meta.c, dump.name),
        time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)),
        files=len(dump.files),
        origin=origin(dump, user_name or _user_name),
        upload=upload(dump),
    )
    data.update(details)
    return data


def upload(dump):
    """{state, last_error, manifest_uri} of a classified dump."""
    manifest_uri = None
    own = [s for s in dump.states if s.get("dump_dir") == dump.path] + dump.states
    for dump_state in own:
        for prefix_state in (dump_state.get("prefixes") or {}).values():
            key = (prefix_state.get("manifest") or {}).get("key")
            if key and prefix_state.get("bucket") and manifest_uri is None:
                manifest_uri = "s3://%s/%s" % (prefix_state["bucket"], key)
    errors = [q.get("last_error") for q in dump.queued if q.get("last_error")]
    refused = [s.get("refused") for s in dump.states if s.get("refused")]
    if dump.queued:
        upload_state = FAILED if errors else PENDING
    elif dump.status == UPLOADED:
        upload_state = UPLOADED
    else:
        upload_state = LOCAL_ONLY
    last_error = (errors or refused or [None])[-1]
    if upload_state == UPLOADED:
        last_error = None
    return {"state": upload_state, "last_error": last_error, "manifest_uri": manifest_uri}


def origin(dump, user_name):
    """Where the dump came from: what the uploader recorded (container adoption records
    ``origin`` in the dump's state), else a host process of the dump dir's owner."""
    for dump_state in dump.states:
        recorded = dump_state.get("origin")
        if isinstance(recorded, dict) and recorded.get("kind") in ("host", "container"):
            return dict(recorded)
    return {"kind": "host", "uid": dump.uid, "user": user_name(dump.uid)}


_USERS = {}


def _user_name(uid):
    if uid not in _USERS:
        try:
            _USERS[uid] = pwd.getpwuid(uid).pw_name
        except (KeyError, OverflowError):
            _USERS[uid] = None
    return _USERS[uid]
