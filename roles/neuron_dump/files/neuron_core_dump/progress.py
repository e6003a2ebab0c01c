"""One dump dir's upload progress: the only code that changes and saves its state file.

The state (``state_dir/uploads/<h>.json``, see :mod:`state`) holds per S3 prefix the
files uploaded (size, mtime, inode, owner, sha256, key, collision), open multipart
uploads, the files skipped with their reason and the manifest written; per dump the
instance id, whether extra capture ran and the names of the files the uploader wrote
itself (``own_files``: never waited on, see :mod:`uploader`).

Saves are atomic (temp + rename). Progress of plain files is saved at most every
0.5 s (a lost update only means a re-check against S3); a multipart upload id and
the end of a dump are saved at once, so a SIGKILL can always resume.
"""

import threading
import time

SAVE_INTERVAL_SECONDS = 0.5


class DumpProgress:
    def __init__(self, store, dump_dir):
        self.store = store
        self.data = store.load_dump(dump_dir)
        self.data.setdefault("own_files", [])
        self._lock = threading.Lock()
        self._last_save = 0.0
        self.prefix = None  # the prefix dict being worked on (see use_prefix)

    # --- dump-wide --------------------------------------------------------------------------

    @property
    def dump_dir(self):
        return self.data["dump_dir"]

    def primary_prefix(self, requested):
        """The one S3 prefix this dump dir goes to: the first it was ever enqueued with (kept), else
        the first of ``requested`` (None: no prefix, the dump stays local)."""
        kept = self.data.get("primary_prefix")
        return kept if kept is not None else next((p for p in requested if p is not None), None)

    def fold_prefixes(self, prefix, requested):
        """Make ``prefix`` the dump's primary prefix; the other ``requested`` ones are only listed
        (``also_requested_prefixes`` in the manifest): nothing is uploaded twice under other jobs."""
        self.data["primary_prefix"] = prefix
        others = set(self.data.get("also_requested_prefixes") or [])
        others.update(p for p in requested if p not in (None, prefix))
        self.data["also_requested_prefixes"] = sorted(others)

    def set_owner(self, uid, instance_id):
        self.data["uid"] = uid
        if not self.data.get("instance_id"):
            self.data["instance_id"] = instance_id

    @property
    def instance_id(self):
        return self.data["instance_id"]

    @property
    def captured(self):
        return bool(self.data.get("captured_ns"))

    def capture_done(self, written, skipped_reason=None):
        with self._lock:
            self.data["captured_ns"] = time.time_ns()
            if skipped_reason:
                self.data["capture_skipped"] = skipped_reason
            self.data["own_files"] = sorted(set(self.data["own_files"]) | set(written))
            self._save_locked()

    def own_files(self):
        return set(self.data.get("own_files") or ())

    def local_only(self):
        with self._lock:
            self.data["local_only"] = True
            self._save_locked()

    def refused(self, reason):
        with self._lock:
            self.data["refused"] = reason
            self._save_locked()

    # --- one S3 prefix ----------------------------------------------------------------------

    def use_prefix(self, prefix, bucket, key_prefix):
        prefix_state = self.data["prefixes"].setdefault(prefix, {})
        prefix_state.setdefault("bucket", bucket)
        prefix_state.setdefault("key_prefix", key_prefix)
        for name in ("files", "multipart", "skipped"):
            prefix_state.setdefault(name, {})
        self.prefix = prefix_state
        return prefix_state

    def known(self, name):
        return self.prefix["files"].get(name)

    def pending_multipart(self, name):
        return dict(self.prefix["multipart"].get(name) or {})

    def file_done(self, result):
        with self._lock:
            self.prefix["files"][result.name] = result.state_entry(time.time_ns())
            self.prefix["skipped"].pop(result.name, None)
            self._save_locked(force=False)

    def file_skipped(self, name, reason, uid=None):
        with self._lock:
            entry = {"reason": reason}
            if uid is not None:
                entry["uid"] = uid
            self.prefix["skipped"][name] = entry

    def multipart_started(self, name, entry):
        with self._lock:
            self.prefix["multipart"][name] = entry
            self._save_locked()

    def multipart_finished(self, name):
        with self._lock:
            self.prefix["multipart"].pop(name, None)

    def manifest_written(self, key, etag, fingerprint):
        with self._lock:
            now = time.time_ns()
            self.prefix["manifest"] = {"key": key, "etag": etag, "fingerprint": fingerprint, "uploaded_ns": now}
            self.prefix["complete_ns"] = now
            self.data.pop("refused", None)  # an earlier refusal (policy changed since) no longer applies
            self._save_locked()

    def save(self, force=True):
        with self._lock:
            self._save_locked(force)

    def _save_locked(self, force=True):
        now = time.monotonic()
        if force or now - self._last_save >= SAVE_INTERVAL_SECONDS:
            self.store.save_dump(self.data)
            self._last_save = now
