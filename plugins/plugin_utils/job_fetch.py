# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reassemble one job's dump on the controller: every host's files, each verified against its manifest.

Layout under ``dest``::

    <dest>/<job>/<host>/<file>             one directory per manifest (host, or host and dump dir)
    <dest>/<job>/<host>-manifest.json      the manifest it was checked against

``<host>`` is the manifest's name without ``-manifest.json``: the instance id, or the
instance id and a 12-hex tag when one host had two dump dirs or owners under the job.

Safety: every name written comes from job_manifest (one checked path component); the job
and host directories are opened with O_NOFOLLOW and everything below them is reached
through their descriptors, so a symlink planted there is never followed; a file is
written to a temporary name (O_EXCL|O_NOFOLLOW), checked (size and sha256) and only then
renamed over its final name, so a bad or partial download never looks like a good one.
No object is read past the size its manifest gives.

Resume: a file already in place with the manifest's size and sha256 is not fetched
again; temporaries of an interrupted run are removed. Files are fetched by a bounded
pool of threads, largest first (a dump's one big core file would otherwise start last and
finish alone). A file larger than one part, from a source that can read byte ranges (S3),
is fetched as ranges by a second pool of the same size and written at their offsets, then
hashed whole before the rename. A part is ``RANGE_PART`` (aws s3 cp's chunk size) or the
job's bytes divided by the threads, whichever is larger: enough ranges that no single
stream is the critical path, no more (each range is one more request, and some S3
servers read the whole object to answer one). ``progress`` is called with a line every ``progress_interval`` seconds.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, wait

from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils import job_manifest

CHUNK = 1024 * 1024
# aws s3 cp's default multipart_chunksize: the smallest range a large object is split into.
RANGE_PART = 8 * CHUNK
# Manifests read at once: one small GET per host of the job.
MANIFEST_READERS = 8
TEMP_PREFIX = ".ncd-fetch-"
TEMP_SUFFIX = ".part"
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class FetchError(Exception):
    """The fetch cannot start (bad destination, listing refused, not enough space)."""


class Missing(Exception):
    """The object a manifest names does not exist."""


class Mismatch(Exception):
    """The object's bytes are not what the manifest says."""


# --- where files go ---------------------------------------------------------------------------


def open_dir(parent_fd, name, create):
    """A descriptor of directory ``name`` below ``parent_fd``, never through a symlink."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=parent_fd)
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise FetchError("%s exists and is not a directory (a symlink is never followed)" % name) from None
        raise


def _sha256_of(fd):
    digest = hashlib.sha256()
    while True:
        chunk = os.read(fd, CHUNK)
        if not chunk:
            return digest.hexdigest()
        digest.update(chunk)


def present(host_fd, entry):
    """Whether ``entry`` is already in place: a regular file (not a link) with its size and sha256."""
    try:
        fd = os.open(
            entry.raw, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), dir_fd=host_fd
        )
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        return stat.S_ISREG(info.st_mode) and info.st_size == entry.size and _sha256_of(fd) == entry.sha256
    finally:
        os.close(fd)


def remove_temporaries(host_fd):
    for name in os.listdir(host_fd):
        if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=host_fd)


@contextlib.contextmanager
def _replacing(dir_fd, name, flags):
    """A descriptor of a new temporary file below ``dir_fd``, renamed over ``name`` when the block ends;
    removed, never renamed, when it raises (so a bad or partial file never takes the name)."""
    temp = "%s%d-%s%s" % (TEMP_PREFIX, os.getpid(), uuid.uuid4().hex[:12], TEMP_SUFFIX)
    flags |= os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(temp, flags, 0o644, dir_fd=dir_fd)
    try:
        try:
            yield fd
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_verified(host_fd, entry, chunks, progress):
    """Write ``chunks`` under a temporary name, check size and sha256, rename into place."""
    with _replacing(host_fd, entry.raw, os.O_WRONLY) as fd:
        digest = hashlib.sha256()
        size = 0
        for chunk in chunks:
            size += len(chunk)
            if size > entry.size:
                raise Mismatch("larger than the manifest's %d bytes" % entry.size)
            digest.update(chunk)
            _write_all(fd, chunk)
            progress.add_bytes(len(chunk))
        if size != entry.size:
            raise Mismatch("%d bytes, the manifest says %d" % (size, entry.size))
        if digest.hexdigest() != entry.sha256:
            raise Mismatch("sha256 %s, the manifest says %s" % (digest.hexdigest(), entry.sha256))


def _write_part(fd, read_range, entry, start, end, progress):
    """Fetch bytes ``start``..``end`` of ``entry`` and write them at their offset."""
    offset = start
    for chunk in read_range(entry, start, end):
        if offset + len(chunk) > end:
            raise Mismatch("range %d-%d: more bytes than asked for" % (start, end - 1))
        view = memoryview(chunk)
        while view:
            written = os.pwrite(fd, view, offset)
            offset += written
            view = view[written:]
        progress.add_bytes(len(chunk))
    if offset != end:
        raise Mismatch("range %d-%d: %d bytes arrived" % (start, end - 1, offset - start))


def _hash_landed(fd, digest, start, end):
    """Add bytes ``start``..``end`` of ``fd``, as they landed on disk, to ``digest``."""
    offset = start
    while offset < end:
        chunk = os.pread(fd, min(CHUNK, end - offset), offset)
        if not chunk:
            raise Mismatch("%d bytes on disk, the manifest says %d" % (offset, end))
        digest.update(chunk)
        offset += len(chunk)


def write_ranged(host_fd, entry, read_range, progress, pool, part_size):
    """``write_verified`` for a large object: ranges fetched by ``pool``, the whole file hashed before the rename.

    The file's own thread hashes each range, in order, as soon as it and those before it have
    landed (read back from the file: what is hashed is what is renamed into place), so the
    hash overlaps the later ranges' transfer instead of following the last one."""
    with _replacing(host_fd, entry.raw, os.O_RDWR) as fd:
        parts = []
        try:
            for start in range(0, entry.size, part_size):
                end = min(start + part_size, entry.size)
                parts.append((pool.submit(_write_part, fd, read_range, entry, start, end, progress), start, end))
            digest = hashlib.sha256()
            for future, start, end in parts:
                future.result()
                _hash_landed(fd, digest, start, end)
        finally:
            wait([future for future, _start, _end in parts])  # no part may still write to fd when it is closed
        if digest.hexdigest() != entry.sha256:
            raise Mismatch("sha256 %s, the manifest says %s" % (digest.hexdigest(), entry.sha256))


def write_manifest_copy(job_fd, name, data):
    with _replacing(job_fd, name, os.O_WRONLY) as fd:
        _write_all(fd, data)


# --- progress ---------------------------------------------------------------------------------


def _mib(value):
    return value / (1024.0 * 1024.0)


class Progress:
    """Counters shared by the workers; emits a line at most every ``interval`` seconds."""

    def __init__(self, job, files, total_bytes, emit=None, interval=5.0):
        self.job = job
        self.files = files
        self.total_bytes = total_bytes
        self.emit = emit
        self.interval = interval
        self.done_files = 0
        self.done_bytes = 0
        self.started = time.monotonic()
        self.last = self.started
        self.lock = threading.Lock()

    def line(self):
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return "%s: %d/%d files, %.1f/%.1f MiB, %.1f MiB/s" % (
            self.job,
            self.done_files,
            self.files,
            _mib(self.done_bytes),
            _mib(self.total_bytes),
            _mib(self.done_bytes) / elapsed,
        )

    def _maybe_emit(self):
        now = time.monotonic()
        if self.emit and self.interval and now - self.last >= self.interval:
            self.last = now
            self.emit(self.line())

    def add_bytes(self, count):
        with self.lock:
            self.done_bytes += count
            self._maybe_emit()

    def file_done(self, counted_bytes=0):
        with self.lock:
            self.done_files += 1
            self.done_bytes += counted_bytes
            self._maybe_emit()


# --- the fetch --------------------------------------------------------------------------------


def _host_result(manifest):
    return {
        "host": manifest.stem,
        "instance_id": manifest.instance_id,
        "hostname": manifest.hostname,
        "dump_dir": manifest.dump_dir,
        "manifest_key": manifest.key,
        "written": manifest.written,
        "files": len(manifest.entries),
        "bytes": sum(entry.size for entry in manifest.entries),
        "downloaded": 0,
        "present": 0,
        "missing": [],
        "mismatched": [],
        "rejected": list(manifest.rejected),
        "errors": [],
        "skipped_by_uploader": manifest.skipped,
        "complete": False,
    }


def _match_expected(expected, manifests):
    """Expected host names that no manifest answers to (instance id, hostname or stem)."""
    known = set()
    for manifest in manifests:
        known |= manifest.names()
    return [host for host in expected if host not in known]


def load_manifests(source):
    """(HostManifest list, [{"key", "reason"}] for manifests that cannot be used, {stem: bytes})."""
    manifests, bad, raw = [], [], {}
    keys = source.list_manifests()
    # One request per host: read them side by side (a job of many hosts would otherwise wait
    # one round trip per host before its first file starts).
    with ThreadPoolExecutor(max_workers=max(1, min(MANIFEST_READERS, len(keys)))) as readers:
        answers = list(readers.map(_read_manifest, [source] * len(keys), keys))
    for key, (data, manifest, problem) in zip(keys, answers):
        if problem is not None:
            bad.append({"key": job_manifest.printable_name(key), "reason": problem})
            continue
        manifests.append(manifest)
        raw[manifest.stem] = data
    return manifests, bad, raw


def _read_manifest(source, key):
    """(bytes, HostManifest, None), or (None, None, why it cannot be used)."""
    try:
        data = source.read_manifest(key, job_manifest.MAX_MANIFEST_BYTES)
        return data, job_manifest.parse(data, key, source.key_prefix), None
    except (job_manifest.ManifestError, Missing, Mismatch) as exc:  # Mismatch: not a regular file, say
        return None, None, str(exc)


def fetch(
    source,
    dest,
    job,
    expected_hosts=(),
    expected_reasons=None,
    threads=8,
    check_mode=False,
    max_file_bytes=None,
    max_total_bytes=None,
    emit=None,
    progress_interval=5.0,
):
    """Fetch (or, in check mode, only compare) the job ``source`` holds into ``dest``/``job``. A result dict."""
    problem = job_manifest.name_problem(job.encode("utf-8", "surrogateescape"))
    if problem:
        raise FetchError("job name %r cannot be a directory name: %s" % (job, problem))
    manifests, bad, raw = load_manifests(source)
    hosts = {manifest.stem: _host_result(manifest) for manifest in manifests}
    for manifest in manifests:
        if max_file_bytes is not None:
            keep = []
            for entry in manifest.entries:
                if entry.size > max_file_bytes:
                    hosts[manifest.stem]["rejected"].append(
                        {"name": entry.name, "reason": "%d bytes: over max_file_bytes" % entry.size}
                    )
                else:
                    keep.append(entry)
            manifest.entries = keep
    total = sum(entry.size for manifest in manifests for entry in manifest.entries)
    if max_total_bytes is not None and total > max_total_bytes:
        raise FetchError("the manifests list %d bytes, more than max_total_bytes (%d)" % (total, max_total_bytes))
    missing = _match_expected(expected_hosts, manifests)
    result = {
        "job": job,
        "dest": os.path.join(dest, job),
        "source": source.describe(),
        "manifests": len(manifests),
        "bad_manifests": bad,
        "expected_hosts": list(expected_hosts),
        "missing_hosts": missing,
        "missing_host_reasons": {host: (expected_reasons or {}).get(host) for host in missing},
        "files": sum(len(m.entries) for m in manifests),
        "bytes": total,
        "downloaded_files": 0,
        "downloaded_bytes": 0,
        "present_files": 0,
        "hosts": [],
    }
    fds = []
    try:
        job_fd = _open_job_dir(dest, job, check_mode, fds)
        plan = []
        for manifest in manifests:
            host_fd = None
            if job_fd is not None:
                try:
                    host_fd = open_dir(job_fd, manifest.stem, create=not check_mode)
                except FileNotFoundError:
                    host_fd = None  # check mode, nothing fetched yet
                if host_fd is not None:
                    fds.append(host_fd)
                    if not check_mode:
                        remove_temporaries(host_fd)
                        write_manifest_copy(job_fd, manifest.stem + job_manifest.SUFFIX, raw[manifest.stem])
            plan += [(manifest, host_fd, entry) for entry in manifest.entries]
        if not check_mode:
            _check_space(dest, plan)
        progress = Progress(job, len(plan), total, emit, progress_interval)
        largest_first = sorted(range(len(plan)), key=lambda index: -plan[index][2].size)
        part_size = max(RANGE_PART, -(-total // max(1, threads)))
        outcomes = [None] * len(plan)
        # Two pools: a file's worker waits for its ranges, so they must not queue behind it.
        with (
            ThreadPoolExecutor(max_workers=max(1, threads)) as parts,
            ThreadPoolExecutor(max_workers=max(1, threads)) as pool,
        ):
            answers = pool.map(
                lambda index: _one(source, plan[index], check_mode, progress, (parts, part_size)), largest_first
            )
            for index, outcome in zip(largest_first, answers):
                outcomes[index] = outcome
        if emit and plan:
            emit(progress.line())
    finally:
        for fd in reversed(fds):
            os.close(fd)
    for (manifest, _fd, entry), (kind, detail) in zip(plan, outcomes):
        host = hosts[manifest.stem]
        if kind == "present":
            host["present"] += 1
        elif kind == "downloaded":
            host["downloaded"] += 1
            result["downloaded_bytes"] += entry.size
        elif kind == "missing":
            host["missing"].append(entry.name)
        elif kind == "mismatch":
            host["mismatched"].append({"name": entry.name, "reason": detail})
        elif kind == "would_download":
            host.setdefault("would_download", []).append(entry.name)
        else:
            host["errors"].append({"name": entry.name, "reason": detail})
    for host in hosts.values():
        host["complete"] = not (host["missing"] or host["mismatched"] or host["rejected"] or host["errors"])
        host["complete"] = host["complete"] and not host.get("would_download")
        result["downloaded_files"] += host["downloaded"]
        result["present_files"] += host["present"]
    result["hosts"] = [hosts[stem] for stem in sorted(hosts)]
    result["complete"] = bool(manifests) and not bad and not result["missing_hosts"]
    result["complete"] = result["complete"] and all(host["complete"] for host in result["hosts"])
    result["problems"] = problems(result)
    return result


def _open_job_dir(dest, job, check_mode, fds):
    if check_mode and not os.path.isdir(dest):
        return None
    if not check_mode:
        os.makedirs(dest, exist_ok=True)  # dest itself is the operator's choice, links included
    dest_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    fds.append(dest_fd)
    try:
        job_fd = open_dir(dest_fd, job, create=not check_mode)
    except FileNotFoundError:
        return None
    fds.append(job_fd)
    return job_fd


def _check_space(dest, plan):
    needed = 0
    for _manifest, host_fd, entry in plan:
        try:
            if os.stat(entry.raw, dir_fd=host_fd, follow_symlinks=False).st_size == entry.size:
                continue
        except OSError:
            pass
        needed += entry.size
    free = shutil.disk_usage(dest).free
    if needed > free:
        raise FetchError("%d bytes to fetch, %d free below %s" % (needed, free, dest))


def _one(source, item, check_mode, progress, ranged):
    """(outcome, detail) of one file: present, downloaded, would_download, missing, mismatch or error."""
    _manifest, host_fd, entry = item
    try:
        if host_fd is not None and present(host_fd, entry):
            progress.file_done(entry.size)
            return "present", None
        if check_mode:
            return ("would_download", None) if source.exists(entry) else ("missing", None)
        read_range = getattr(source, "range_chunks", None)
        parts, part_size = ranged
        if read_range is not None and entry.size > part_size:
            write_ranged(host_fd, entry, read_range, progress, parts, part_size)
        else:
            write_verified(host_fd, entry, source.chunks(entry), progress)
        progress.file_done()
        return "downloaded", None
    except Missing:
        return "missing", None
    except Mismatch as exc:
        return "mismatch", str(exc)
    except Exception as exc:  # one file's trouble is reported with it; the others go on
        return "error", "%s: %s" % (type(exc).__name__, exc)


def problems(result):
    """One line per reason the fetch is incomplete."""
    found = []
    if not result["manifests"]:
        found.append("no manifest below %s" % result["source"])
    for bad in result["bad_manifests"]:
        found.append("unusable manifest %s: %s" % (bad["key"], bad["reason"]))
    for host in result["missing_hosts"]:
        why = result["missing_host_reasons"].get(host) or "upload pending, failed or never made"
        found.append("host %s: no manifest (%s)" % (host, why))
    for host in result["hosts"]:
        for name in host["missing"]:
            found.append("%s/%s: listed in the manifest, not found" % (host["host"], name))
        for item in host["mismatched"]:
            found.append("%s/%s: does not match the manifest (%s)" % (host["host"], item["name"], item["reason"]))
        for item in host["rejected"]:
            found.append("%s/%s: rejected (%s)" % (host["host"], item["name"], item["reason"]))
        for item in host["errors"]:
            found.append("%s/%s: %s" % (host["host"], item["name"], item["reason"]))
    return found
