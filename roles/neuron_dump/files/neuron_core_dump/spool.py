"""The spool between the hook (any user) and the uploader (root).

Layout below ``spool_dir``:

``incoming/`` (root, 1733)
    The hook writes ``.ncd-tmp-*`` and renames it to ``<unique>-<pid>.json``: an
    entry is either absent or complete. Users can create entries but not list or
    touch other users' entries (sticky, no read bit).
``worker.lock`` (root, 0644)
    Held (``flock``) by a worker a hook spawned; hooks probe it (:func:`worker_running`)
    so a running worker is not started twice.
``queue/`` (root, 0700)
    The uploader claims an entry by renaming it here (atomic, so two uploaders
    never both claim it), takes the owner uid from ``fstat`` (never from the
    content), validates the content and rewrites it as a trusted queue entry
    ``{"entry": {...}, "uid": N, "claimed_ns": N, "attempts": N, "last_error": ...}``.

Entries are untrusted input: size-capped, regular files only, no hard links.
"""

import errno
import os
import stat
import time

from . import fastjson, fsutil, hostinfo

ENTRY_SCHEMA = "neuron-core-dump/spool/v1"
INCOMING = "incoming"
QUEUE = "queue"
MAX_ENTRY_BYTES = 64 * 1024
MAX_PATH_CHARS = 4096
MAX_PREFIX_CHARS = 1024
CLAIM_PREFIX = ".claim-"
WORKER_LOCK = "worker.lock"  # held (flock) by the uploader a hook spawned


def _check_shared_dir(fd, what):
    info = os.fstat(fd)
    if info.st_uid not in (0, os.geteuid()):
        raise fsutil.UnsafePathError(errno.EPERM, "%s is owned by uid %d" % (what, info.st_uid))
    if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
        raise fsutil.UnsafePathError(errno.EPERM, "%s is world-writable without the sticky bit" % what)


def enqueue(spool_dir, entry, file_mode=0o600):
    """Hook side: drop one entry into ``incoming/``. Returns the entry name."""
    incoming_fd = fsutil.walk(os.path.join(spool_dir, INCOMING))
    try:
        _check_shared_dir(incoming_fd, "spool incoming dir")
        name = "%s-%d.json" % (fsutil.unique_suffix(), os.getpid())
        fsutil.write_new_file(incoming_fd, name, fastjson.dumps(entry).encode("ascii"), file_mode)
        return name
    finally:
        os.close(incoming_fd)


def make_entry(dump_dir, s3_prefix, kind, record_name, flags_pid, instance_id=None):
    return {
        "instance_id": instance_id,
        "schema": ENTRY_SCHEMA,
        "dump_dir": dump_dir,
        "s3_prefix": s3_prefix,
        "kind": kind,
        "record": record_name,
        "created_ns": time.time_ns(),
        "hook_pid": os.getpid(),
        "pid": flags_pid,
    }


# --- uploader side ------------------------------------------------------------------------------


class BadEntry(ValueError):
    pass


def validate_entry(data):
    """Normalise an untrusted entry or raise BadEntry."""
    if not isinstance(data, dict):
        raise BadEntry("entry is not a JSON object")
    dump_dir = data.get("dump_dir")
    if not isinstance(dump_dir, str) or len(dump_dir) > MAX_PATH_CHARS:
        raise BadEntry("dump_dir missing or too long")
    try:
        parts = fsutil.split_components(dump_dir)
    except fsutil.UnsafePathError as exc:
        raise BadEntry("dump_dir unusable: %s" % exc.strerror) from None
    prefix = data.get("s3_prefix")
    if prefix is not None and (not isinstance(prefix, str) or len(prefix) > MAX_PREFIX_CHARS):
        raise BadEntry("s3_prefix is not a string of at most %d chars" % MAX_PREFIX_CHARS)
    if prefix == "":
        prefix = None
    created = data.get("created_ns")
    instance_id = data.get("instance_id")
    return {
        # Untrusted like the rest; the uploader prefers DMI and uses this only where there is none.
        "instance_id": instance_id if hostinfo.valid_instance_id(instance_id) else None,
        "dump_dir": "/" + "/".join(parts),
        "s3_prefix": prefix,
        "kind": str(data.get("kind", ""))[:32],
        "record": str(data.get("record", ""))[:255] or None,
        "created_ns": created if isinstance(created, int) and not isinstance(created, bool) else 0,
    }


class Spool:
    """The uploader's (root's) handle on the spool: the only code that knows its layout.

    ``claim()`` moves complete incoming entries into the queue, ``entries()`` reads the
    queue, ``save()``/``remove()`` change one entry, ``remove_below(path)`` drops the
    entries of a deleted dump, ``worker_lock()`` is the lock a spawned worker holds,
    ``clean_stale()`` removes temp files of killed writers.
    """

    def __init__(self, spool_dir):
        self.spool_dir = spool_dir
        self.incoming_fd = fsutil.walk(os.path.join(spool_dir, INCOMING))
        try:
            spool_fd = fsutil.walk(spool_dir)
            try:
                self.queue_fd = fsutil.walk_below(spool_fd, [QUEUE], create_mode=0o700)
            finally:
                os.close(spool_fd)
            info = os.fstat(self.queue_fd)
            if info.st_uid != os.geteuid() or info.st_mode & 0o077:
                os.close(self.queue_fd)
                # queue entries are trusted (their uid was checked on claim): nobody else may touch them
                raise fsutil.UnsafePathError(errno.EPERM, "spool queue dir must be private to uid %d" % os.geteuid())
        except BaseException:
            os.close(self.incoming_fd)
            raise

    def close(self):
        fsutil.quietly(os.close, self.incoming_fd)
        fsutil.quietly(os.close, self.queue_fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    def has_incoming(self):
        return any(not name.startswith(".") for name in os.listdir(self.incoming_fd))

    def claim(self, logger):
        """Claim complete incoming entries; returns {queue name: trusted entry} of those claimed now."""
        return _claim_incoming(self.incoming_fd, self.queue_fd, logger)

    def entries(self, logger):
        """All trusted queue entries as {name: entry}."""
        return _load_queue(self.queue_fd, logger)

    def save(self, name, data):
        fsutil.replace_file(self.queue_fd, name, fsutil.dump_json(data, indent=1), 0o600, fsync=False)

    def remove(self, name):
        fsutil.quietly(os.unlink, name, dir_fd=self.queue_fd)

    def remove_below(self, path):
        """Drop every queue entry whose dump dir is ``path`` or below it."""
        for name, queued in _load_queue(self.queue_fd, _QUIET).items():
            if fsutil.is_under(queued["entry"].get("dump_dir", ""), path):
                self.remove(name)

    def discard(self, dump_dir):
        """Drop incoming and queued entries naming exactly ``dump_dir`` (self-test clean-up)."""
        for name in os.listdir(self.incoming_fd):
            if name.startswith("."):
                continue
            try:
                data = fsutil.load_json(self.incoming_fd, name, MAX_ENTRY_BYTES)
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("dump_dir") == dump_dir:
                fsutil.quietly(os.unlink, name, dir_fd=self.incoming_fd)
        for name, queued in _load_queue(self.queue_fd, _QUIET).items():
            if queued["entry"].get("dump_dir") == dump_dir:
                self.remove(name)

    def worker_lock(self):
        """The spawned worker's lock (an fd to close), or None when another worker holds it."""
        import fcntl  # see worker_running

        fd = os.open(
            os.path.join(self.spool_dir, WORKER_LOCK), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return fd

    def clean_stale(self, cutoff, logger):
        """Remove temp files (``.*``) older than ``cutoff`` (epoch seconds) left by killed writers."""
        for sub, fd in ((INCOMING, self.incoming_fd), (QUEUE, self.queue_fd)):
            for name in os.listdir(fd):
                if not name.startswith("."):
                    continue
                try:
                    if os.lstat(name, dir_fd=fd).st_mtime < cutoff:
                        os.unlink(name, dir_fd=fd)
                        logger.info("gc: removed abandoned spool file %s/%s" % (sub, name))
                except OSError:
                    continue


class _Quiet:
    @staticmethod
    def warning(_message):
        return None


_QUIET = _Quiet()


def _claim_incoming(incoming_fd, queue_fd, logger):
    """Move every complete incoming entry into the queue. Returns the claimed names."""
    claimed = {}
    for name in sorted(os.listdir(incoming_fd)):
        if name.startswith("."):
            continue  # a hook is still writing it (stale ones are removed by gc)
        claim = CLAIM_PREFIX + name
        try:
            os.rename(name, claim, src_dir_fd=incoming_fd, dst_dir_fd=queue_fd)
        except FileNotFoundError:
            continue  # another uploader was faster
        except OSError as exc:
            logger.error("cannot claim spool entry %r: %s" % (name, exc))
            continue
        try:
            fd, info = fsutil.open_regular(queue_fd, claim)
            try:
                if info.st_nlink != 1:
                    raise BadEntry("entry has %d hard links" % info.st_nlink)
                if info.st_size > MAX_ENTRY_BYTES:
                    raise BadEntry("entry larger than %d bytes" % MAX_ENTRY_BYTES)
                raw = os.read(fd, MAX_ENTRY_BYTES + 1)
            finally:
                os.close(fd)
            entry = validate_entry(fastjson.loads(raw.decode("utf-8")))
            queued = {
                "entry": entry,
                "uid": info.st_uid,
                "claimed_ns": time.time_ns(),
                "attempts": 0,
                "last_error": None,
                "done": None,
            }
            final = name if name.endswith(".json") and len(name) < 200 else fsutil.unique_suffix() + ".json"
            fsutil.replace_file(queue_fd, final, fsutil.dump_json(queued, indent=1), 0o600, fsync=False)
            claimed[final] = queued
        except (ValueError, OSError) as exc:
            logger.warning("rejected spool entry %r: %s" % (name, exc))
        finally:
            fsutil.quietly(os.unlink, claim, dir_fd=queue_fd)
    return claimed


def _load_queue(queue_fd, logger):
    result = {}
    for name in sorted(os.listdir(queue_fd)):
        if name.startswith(".") or not name.endswith(".json"):
            continue
        try:
            data = fsutil.load_json(queue_fd, name, MAX_ENTRY_BYTES * 2)
            if isinstance(data, dict) and isinstance(data.get("entry"), dict):
                result[name] = data
        except (ValueError, OSError) as exc:
            logger.warning("unreadable queue entry %r: %s" % (name, exc))
    return result


def read_queue(spool_dir):
    """Queue entries, read-only (root; others get [])."""
    try:
        queue_fd = fsutil.walk(os.path.join(spool_dir, QUEUE))
    except OSError:
        return []
    try:
        return list(_load_queue(queue_fd, _QUIET).values())
    except OSError:
        return []
    finally:
        os.close(queue_fd)


def count_entries(spool_dir):
    """(incoming entries, queue entries) by name only, without reading them: cheap at any depth.

    -1 for a directory this user cannot list (incoming is 1733: only root sees the entries).
    """
    counts = []
    for sub in (INCOMING, QUEUE):
        try:
            fd = fsutil.walk(os.path.join(spool_dir, sub))
        except OSError:
            counts.append(0 if sub == QUEUE else -1)
            continue
        try:
            counts.append(sum(1 for name in os.listdir(fd) if not name.startswith(".")))
        except OSError:
            counts.append(-1)
        finally:
            os.close(fd)
    return counts[0], counts[1]


def incoming_dump_dirs(spool_dir, limit):
    """The dump dirs named by incoming entries, or None when there are more than ``limit`` (root only)."""
    try:
        fd = fsutil.walk(os.path.join(spool_dir, INCOMING))
    except OSError:
        return set()
    try:
        names = [name for name in os.listdir(fd) if not name.startswith(".")]
        if len(names) > limit:
            return None
        dirs = set()
        for name in names:
            try:
                dirs.add(validate_entry(fsutil.load_json(fd, name, MAX_ENTRY_BYTES))["dump_dir"])
            except (OSError, ValueError):
                continue
        return dirs
    except OSError:
        return set()
    finally:
        os.close(fd)


def worker_running(spool_dir):
    """Hook side: True when a worker holds the worker lock (then it will also see our entry)."""
    import fcntl  # not at the top: the hook imports this module and needs fcntl only here

    try:
        fd = os.open(os.path.join(spool_dir, WORKER_LOCK), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we may have taken
    return False


def last_arrival(spool_dir):
    """Epoch seconds when the newest incoming entry arrived (the dir's mtime), or None."""
    try:
        return os.stat(os.path.join(spool_dir, INCOMING)).st_mtime
    except OSError:
        return None


def remove_entries_below(spool_dir, path):
    """Drop the queue entries of a dump being deleted (root; silently nothing otherwise)."""
    try:
        with Spool(spool_dir) as handle:
            handle.remove_below(path)
    except OSError:
        return
