"""The uploader's own state below ``state_dir`` (root only).

``uploads/<h>.json`` per dump dir: upload progress per S3 prefix, files with size,
                     mtime, inode and sha256, pending multipart upload ids, the
                     manifest, whether extra capture ran, local-only marker.
``locks/<h>.lock``   ``fcntl.flock`` per dump dir: two uploaders never work on one
                     dump at the same time, so no file is uploaded twice.
``status.json``      the uploader's summary for ``status``: last error / success, whether it
                     is broken, queue depth per uid, held and refused dumps, hard-cap
                     deletions (written once per pass, so ``status`` never walks the spool).
``capture-last``     when the last extra capture ran (host-wide rate limit).
``uid-bytes.json``   bytes uploaded per uid per minute over the last hour (byte quota).

Every file is replaced atomically (temp + rename), so a SIGKILL at any moment leaves
either the old or the new state, never a torn one. ``<h>`` is a hash of the dump
dir path, so any path maps to a fixed-length, safe file name.
"""

import errno
import os
import time

from . import fsutil

# not "dumps": that is the default dump root (1733, user-writable) in the same state_dir
UPLOADS = "uploads"
LOCKS = "locks"
STATUS = "status.json"
STATUS_LOCK = "status.lock"
CAPTURE_STAMP = "capture-last"
CAPTURE_LOCK = "capture.lock"
QUOTA = "uid-bytes.json"
QUOTA_LOCK = "quota.lock"
MAX_STATE_BYTES = 16 * 1024 * 1024


def _check_private(fd, what, allow_read=False):
    """State is trusted input for the uploader: nobody else may be able to write (or read) it."""
    info = os.fstat(fd)
    forbidden = 0o022 if allow_read else 0o077
    if info.st_uid != os.geteuid() or info.st_mode & forbidden:
        raise fsutil.UnsafePathError(
            errno.EPERM, "state dir %s must be owned by uid %d and not open to others" % (what, os.geteuid())
        )


def dump_key(dump_dir):
    import hashlib  # not at the top: ``status`` reads state without it

    return hashlib.sha256(dump_dir.encode("utf-8", "surrogateescape")).hexdigest()[:40]


class LockTimeout(Exception):
    pass


class Store:
    def __init__(self, state_dir):
        self.state_dir = state_dir
        self.fd = fsutil.walk(state_dir, create_mode=0o755)
        self.dumps_fd = self.locks_fd = None
        try:
            _check_private(self.fd, state_dir, allow_read=True)
            self.dumps_fd = fsutil.walk_below(self.fd, [UPLOADS], create_mode=0o700)
            _check_private(self.dumps_fd, UPLOADS)
            self.locks_fd = fsutil.walk_below(self.fd, [LOCKS], create_mode=0o700)
            _check_private(self.locks_fd, LOCKS)
        except BaseException:
            self.close()
            raise

    def close(self):
        for fd in (self.dumps_fd, self.locks_fd, self.fd):
            if fd is not None:
                fsutil.quietly(os.close, fd)

    # --- per dump ---------------------------------------------------------------------------

    def load_dump(self, dump_dir):
        try:
            data = fsutil.load_json(self.dumps_fd, dump_key(dump_dir) + ".json", MAX_STATE_BYTES)
            if isinstance(data, dict) and data.get("dump_dir") == dump_dir:
                data.setdefault("prefixes", {})
                return data
        except FileNotFoundError:
            pass
        except (ValueError, OSError):
            pass  # a damaged state file means "nothing known": worst case a file is uploaded again
        return {"dump_dir": dump_dir, "prefixes": {}, "captured_ns": None, "local_only": False}

    def save_dump(self, data):
        data["updated_ns"] = time.time_ns()
        name = dump_key(data["dump_dir"]) + ".json"
        fsutil.replace_file(self.dumps_fd, name, fsutil.dump_json(data, indent=1), 0o600, fsync=False)

    def forget_dump(self, dump_dir):
        for name in (dump_key(dump_dir) + ".json", dump_key(dump_dir) + ".lock"):
            for fd in (self.dumps_fd, self.locks_fd):
                fsutil.quietly(os.unlink, name, dir_fd=fd)

    def all_dumps(self):
        result = []
        for name in os.listdir(self.dumps_fd):
            if name.startswith(".") or not name.endswith(".json"):
                continue
            try:
                data = fsutil.load_json(self.dumps_fd, name, MAX_STATE_BYTES)
            except (ValueError, OSError):
                continue
            if isinstance(data, dict) and isinstance(data.get("dump_dir"), str):
                result.append(data)
        return result

    # --- locks ------------------------------------------------------------------------------

    def lock(self, dump_dir, wait_seconds):
        return _FileLock(self.locks_fd, dump_key(dump_dir) + ".lock", wait_seconds)

    # --- status -----------------------------------------------------------------------------

    def load_status(self):
        try:
            data = fsutil.load_json(self.fd, STATUS, MAX_STATE_BYTES)
            if isinstance(data, dict):
                return data
        except (ValueError, OSError):
            pass
        return {}

    def update_status(self, change):
        """Apply ``change(status_dict)`` under a lock, so concurrent runs do not lose updates."""
        with _FileLock(self.locks_fd, STATUS_LOCK, 30):
            status = self.load_status()
            change(status)
            fsutil.replace_file(self.fd, STATUS, fsutil.dump_json(status, indent=1), 0o644, fsync=False)
            return status

    # --- host-wide rate limits --------------------------------------------------------------

    def capture_slot(self, min_interval_seconds):
        """Whether an extra capture may run now (at most one per interval on this host); claims it."""
        if min_interval_seconds <= 0:
            return True
        with _FileLock(self.locks_fd, CAPTURE_LOCK, 30):
            try:
                last = int(fsutil.read_small(self.fd, CAPTURE_STAMP, 64)[0].decode("ascii").strip() or 0)
            except (OSError, ValueError):
                last = 0
            now = time.time_ns()
            if 0 <= now - last < min_interval_seconds * 1e9:
                return False
            fsutil.replace_file(self.fd, CAPTURE_STAMP, str(now).encode("ascii"), 0o644, fsync=False)
            return True

    def add_uid_bytes(self, uid, count):
        """Record ``count`` bytes uploaded for ``uid`` (per-minute buckets of the last hour)."""
        with _FileLock(self.locks_fd, QUOTA_LOCK, 30):
            usage = self._load_quota()
            minute = int(time.time() // 60)
            buckets = usage.setdefault(str(uid), {})
            buckets[str(minute)] = int(buckets.get(str(minute), 0)) + int(count)
            fsutil.replace_file(self.fd, QUOTA, fsutil.dump_json(usage), 0o600, fsync=False)

    def uids_over_byte_quota(self, limit):
        """uids (ints) that uploaded more than ``limit`` bytes in the last hour; none when limit is 0."""
        if not limit:
            return set()
        usage = self._load_quota()
        return {int(uid) for uid, buckets in usage.items() if sum(buckets.values()) >= limit}

    def _load_quota(self):
        try:
            data = fsutil.load_json(self.fd, QUOTA, MAX_STATE_BYTES)
        except (ValueError, OSError):
            return {}
        if not isinstance(data, dict):
            return {}
        since = int(time.time() // 60) - 60
        result = {}
        for uid, buckets in data.items():
            if isinstance(buckets, dict):
                kept = {m: v for m, v in buckets.items() if m.isdigit() and int(m) > since and isinstance(v, int)}
                if kept:
                    result[uid] = kept
        return result


def read_status(state_dir):
    """Read status.json without creating anything (for ``status`` run by any user)."""
    try:
        fd = fsutil.walk(state_dir)
    except OSError:
        return {}
    try:
        data = fsutil.load_json(fd, STATUS, MAX_STATE_BYTES)
        return data if isinstance(data, dict) else {}
    except (ValueError, OSError):
        return {}
    finally:
        os.close(fd)


class _FileLock:
    def __init__(self, dir_fd, name, wait_seconds):
        self.dir_fd = dir_fd
        self.name = name
        self.wait_seconds = wait_seconds
        self.fd = None

    def __enter__(self):
        import fcntl  # not at the top: ``status`` reads state and never locks (an extension module)

        fd = os.open(self.name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self.dir_fd)
        deadline = time.monotonic() + self.wait_seconds
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LockTimeout("lock %s held by another uploader" % self.name)
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        self.fd = fd
        return self

    def __exit__(self, *exc_info):
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None
        return False
