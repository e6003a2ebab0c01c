"""Sending one file of a dump to S3: single PUT or resumable multipart, always conditional.

:meth:`Transfer.send` returns a :class:`FileResult` (or raises :class:`Skip` for a file
that must not be sent, or the S3/OS error of a failed attempt). What it guarantees:

- **Nothing another dump wrote is overwritten.** A file's first upload uses
  ``IfNoneMatch: "*"`` on PutObject and on CompleteMultipartUpload. On 412 the existing
  object is compared (``x-amz-meta-ncd-sha256``, else the stored SHA-256 checksum, else
  the MD5 ETag of a plain object): the same bytes count as done (``EXISTS``); other
  bytes are a collision, and ours goes to ``<key>%~c<sha256[:16]>`` (see :mod:`keys`),
  conditional as well; the result names both keys and the other object's owner.
  Only a key this uploader itself wrote for the same file (known from the state) is
  ever replaced, when that file changed.
- **Resumable multipart.** The whole-file SHA-256 is computed first (it goes into the
  object's metadata), the upload id is saved through the progress object before any
  part is sent, and a rerun after SIGKILL lists the parts already there and re-sends
  only those whose checksum does not match.
- Only regular files with one link, owned by the dump's owner (or root), are opened,
  without following symlinks; a file that changes while it is sent is sent again later.
"""

import errno
import hashlib
import os
import stat
import time

from . import fsutil, keys, manifest, s3

SENT = "sent"  # uploaded now
EXISTS = "exists"  # the key already held exactly these bytes
SAME = "same"  # uploaded before, unchanged since (touched only)


class Skip(Exception):
    """This file is not uploaded, for good (recorded in the manifest under ``skipped``)."""


class Aborted(Exception):
    """Not tried: S3 already failed for another file of the same dump."""


class FileResult:
    def __init__(self, name, status, key, info, sha256_hex, collision=None):
        self.name = name
        self.status = status
        self.key = key
        self.info = info
        self.sha256_hex = sha256_hex
        self.collision = collision  # {"key": taken key, "owner": text} when ours went elsewhere

    def state_entry(self, now_ns):
        entry = {
            "size": self.info.st_size,
            "mtime_ns": self.info.st_mtime_ns,
            "ino": self.info.st_ino,
            "uid": self.info.st_uid,
            "sha256": self.sha256_hex,
            "key": self.key,
            "uploaded_ns": now_ns,
        }
        if self.collision:
            entry["collision"] = self.collision
        return entry


class Selection:
    """The files of a dump dir to send now (see :func:`select`)."""

    def __init__(self):
        self.todo = []
        self.unchanged = 0  # uploaded before, unchanged since
        self.deferred = []  # still being written (younger than the settle time)


def select(dump_fd, progress, settle_ns, logger):
    """Which files of the dump dir (open as ``dump_fd``) to send now; the rest is recorded.

    Skipped for good (recorded in the manifest with the reason): manifests (only the
    uploader writes them), symlinks (never followed), anything not a regular file.
    Deferred: files modified less than ``settle_ns`` ago, unless the uploader wrote them
    itself (extra capture: never waited on). Dot files are temp files of writers.
    """
    selection = Selection()
    now_ns = time.time_ns()
    own = progress.own_files()
    progress.prefix["skipped"] = {}
    for name in sorted(os.listdir(dump_fd)):
        if name.startswith("."):
            continue  # temp files of writers in progress
        try:
            info = os.lstat(name, dir_fd=dump_fd)
        except FileNotFoundError:
            continue
        if name.endswith(manifest.SUFFIX):
            progress.file_skipped(name, "reserved name: only the uploader writes manifests", info.st_uid)
            continue
        if not stat.S_ISREG(info.st_mode):
            link = stat.S_ISLNK(info.st_mode)
            progress.file_skipped(name, "symlink: not followed" if link else "not a regular file", info.st_uid)
            if link:
                where = "%s/%s" % (keys.display(progress.dump_dir), keys.display(name))
                logger.warning("%s is a symlink: not followed, not uploaded" % where)
            continue
        known = progress.known(name)
        if known and (known.get("size"), known.get("mtime_ns"), known.get("ino")) == (
            info.st_size,
            info.st_mtime_ns,
            info.st_ino,
        ):
            selection.unchanged += 1
        elif name not in own and now_ns - info.st_mtime_ns < settle_ns:
            selection.deferred.append(name)
        else:
            selection.todo.append(name)
    return selection


def identity(info):
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "ino": info.st_ino}


class Target:
    """Where one dump goes and what every object of it carries."""

    def __init__(self, bucket, key_prefix, uid, user, host, dump_dir):
        self.bucket = bucket
        self.key_prefix = key_prefix
        self.uid = uid
        self.user = user
        self.host = host
        self.dump_dir = dump_dir

    def metadata(self, sha256_hex):
        return s3.owner_metadata(self.uid, self.user, self.host, self.dump_dir, sha256_hex)


class Transfer:
    def __init__(self, client, s3_config, logger, part_pool):
        self.client = client
        self.config = s3_config
        self.logger = logger
        self.part_pool = part_pool
        self.abort_reason = None  # set by the caller when S3 failed for good for this dump

    def check_abort(self):
        if self.abort_reason is not None:
            raise Aborted("not tried: %s" % self.abort_reason)

    def send(self, dump_fd, name, target, known, pending, progress, ours=False):
        """Upload ``name`` (a file of the dump dir open as ``dump_fd``). Returns a FileResult.

        ``ours``: the uploader wrote this file itself (extra capture), so root may own it.
        """
        self.check_abort()
        try:
            fd, info = fsutil.open_regular(dump_fd, name)
        except FileNotFoundError:
            raise Skip("vanished before upload") from None
        except fsutil.UnsafePathError as exc:
            raise Skip(exc.strerror or "not a regular file") from None
        except PermissionError as exc:
            raise Skip("unreadable: %s" % exc.strerror) from None
        except OSError as exc:
            # the name was swapped after the listing (a user's race): O_NOFOLLOW refuses a symlink
            # with ELOOP and a socket cannot be opened (ENXIO). Skipped like at the listing, not a
            # failure of the dump, which would hold its manifest back until the next pass
            if exc.errno == errno.ELOOP:
                raise Skip("symlink: not followed") from None
            if exc.errno == errno.ENXIO:
                raise Skip("not a regular file") from None
            raise
        try:
            if info.st_nlink == 0:  # deleted or renamed over between the open and the fstat
                raise Skip("vanished before upload")
            if info.st_nlink != 1:
                raise Skip("has %d hard links" % info.st_nlink)
            if target.uid != info.st_uid and target.uid != 0 and not (ours and info.st_uid == 0):
                raise Skip("owned by uid %d, not the dump's uid %d" % (info.st_uid, target.uid))
            own_key = known.get("key") if known else None
            pending = self._drop_stale_multipart(name, info, target, pending, progress)
            if info.st_size >= self.config["multipart_threshold_bytes"]:
                return self._multipart(fd, info, name, target, known, own_key, pending, progress)
            return self._single(fd, info, name, target, known, own_key)
        finally:
            os.close(fd)

    def _drop_stale_multipart(self, name, info, target, pending, progress):
        """``pending``, or {} after aborting it when it was started for an earlier version of the file.

        Such an upload (the file changed while it was sent) can never be completed, and left alone
        its parts would stay stored (and billed) in the bucket; whichever way the file goes now.
        """
        if not pending.get("upload_id") or all(pending.get(k) == v for k, v in identity(info).items()):
            return pending
        try:
            self.client.abort_multipart(target.bucket, pending.get("key"), pending["upload_id"])
        except Exception as exc:  # a lifecycle rule removes it in the end; the new upload goes on
            self.logger.info("cannot abort the stale multipart upload of %s: %s" % (keys.display(name), exc))
        progress.multipart_finished(name)
        return {}

    # --- single PUT ---------------------------------------------------------------------------

    def _single(self, fd, info, name, target, known, own_key):
        data = _pread_all(fd, info.st_size)
        # checked before the PUT, not after: what is sent is ``data``, so only its read must be
        # consistent. A file that changed after the object was written left that object without a
        # state entry, and the next pass took our own key for another dump's (a ``%~c`` collision)
        _check_unchanged(fd, info)
        sha = hashlib.sha256(data)
        hexdigest = sha.hexdigest()
        if known and known.get("sha256") == hexdigest and known.get("size") == info.st_size:
            return FileResult(name, SAME, own_key, info, hexdigest, known.get("collision"))
        key = own_key or keys.object_key(target.key_prefix, name)
        if self.config["head_before_upload"] and self.client.matches(
            self.client.head(target.bucket, key), info.st_size, sha.digest(), data
        ):
            return FileResult(name, EXISTS, key, info, hexdigest)

        def put(where, conditional):
            self.client.put_bytes(
                target.bucket, where, data, sha.digest(), if_none_match=conditional, metadata=target.metadata(hexdigest)
            )

        return self._conditional(name, info, target, key, own_key, hexdigest, sha.digest(), data, put)

    def _conditional(self, name, info, target, key, own_key, hexdigest, digest, data, write):
        """Write ``key`` unless another object holds it; on a collision, write our disambiguated key.

        ``write(key, conditional)`` sends the object. Our own earlier key (``own_key``) is
        replaced unconditionally: this uploader wrote it for this very file.
        """
        if own_key is not None and key == own_key:
            write(key, False)
            return FileResult(name, SENT, key, info, hexdigest)
        conditional = self.config["conditional_put"]
        try:
            write(key, conditional)
            return FileResult(name, SENT, key, info, hexdigest)
        except Exception as exc:
            if not s3.is_precondition_failed(exc):
                raise
        head = self.client.head(target.bucket, key)
        if self.client.matches(head, info.st_size, digest, data):
            return FileResult(name, EXISTS, key, info, hexdigest)
        other = keys.object_key(target.key_prefix, name, keys.collision_suffix(hexdigest))
        collision = {"key": key, "owner": s3.describe_owner(head)}
        self.logger.warning(
            "s3://%s/%s already holds other bytes, written by %s; ours (uid %d (%s) from %s) go to s3://%s/%s"
            % (
                target.bucket,
                key,
                collision["owner"],
                target.uid,
                target.user,
                keys.display(target.dump_dir),
                target.bucket,
                other,
            )
        )
        try:
            write(other, conditional)
        except Exception as exc:
            if not s3.is_precondition_failed(exc):
                raise
            if not self.client.matches(self.client.head(target.bucket, other), info.st_size, digest, data):
                raise
        return FileResult(name, SENT, other, info, hexdigest, collision)

    # --- multipart ----------------------------------------------------------------------------

    def _multipart(self, fd, info, name, target, known, own_key, pending, progress):
        same_file = bool(pending) and all(pending.get(k) == v for k, v in identity(info).items())
        hexdigest = pending.get("sha256") if same_file else None
        if not hexdigest:
            hexdigest = s3.sha256_of_fd(fd, info.st_size).hexdigest()
        if known and known.get("sha256") == hexdigest and known.get("size") == info.st_size:
            return FileResult(name, SAME, own_key, info, hexdigest, known.get("collision"))
        key = own_key or keys.object_key(target.key_prefix, name)
        state = {"resume": pending if same_file else None}

        def write(where, conditional):
            self._multipart_to(fd, info, name, target, where, hexdigest, state, progress, conditional)

        result = self._conditional(name, info, target, key, own_key, hexdigest, bytes.fromhex(hexdigest), None, write)
        progress.multipart_finished(name)
        return result

    def _multipart_to(self, fd, info, name, target, key, hexdigest, state, progress, conditional):
        size = info.st_size
        # S3 allows 10,000 parts: very large files get larger parts
        part_size = max(self.config["multipart_chunk_bytes"], -(-size // 10000))
        listed = {}
        upload_id = None
        resume = state.pop("resume", None)
        if resume and resume.get("upload_id") and resume.get("key") == key:
            listed = self.client.list_parts(target.bucket, key, resume["upload_id"])
            if listed is not None:
                upload_id = resume["upload_id"]
                part_size = resume.get("part_size") or part_size
                self.logger.info("resuming multipart upload of %s (%d parts already there)" % (key, len(listed)))
            else:
                listed = {}
        elif resume and resume.get("upload_id"):
            self.client.abort_multipart(target.bucket, resume.get("key") or key, resume["upload_id"])
        if upload_id is None:
            upload_id = self.client.create_multipart(target.bucket, key, metadata=target.metadata(hexdigest))
        entry = identity(info)
        entry.update({"upload_id": upload_id, "key": key, "part_size": part_size, "sha256": hexdigest})
        progress.multipart_started(name, entry)  # saved before any part is sent: a SIGKILL can resume
        count = max(1, -(-size // part_size))
        stop = []  # one failed part stops the parts of this file not yet started
        futures = [
            self.part_pool.submit(self._part, fd, info, target.bucket, key, upload_id, number, part_size, listed, stop)
            for number in range(1, count + 1)
        ]
        parts = []
        error = None
        for future in futures:
            try:
                parts.append(future.result())
            except Exception as exc:  # the first error is the one reported
                error = error or exc
        if error is not None:
            raise error
        _check_unchanged(fd, info)
        try:
            self.client.complete_multipart(target.bucket, key, upload_id, parts, if_none_match=conditional)
        except Exception as exc:
            if s3.is_precondition_failed(exc):
                self.client.abort_multipart(target.bucket, key, upload_id)
                progress.multipart_finished(name)
            raise

    def _part(self, fd, info, bucket, key, upload_id, number, part_size, listed, stop):
        self.check_abort()
        if stop:
            raise Aborted("not tried: another part of this file failed")
        try:
            return self._send_part(fd, info, bucket, key, upload_id, number, part_size, listed)
        except Exception:
            stop.append(number)
            raise

    def _send_part(self, fd, info, bucket, key, upload_id, number, part_size, listed):
        offset = (number - 1) * part_size
        length = min(part_size, info.st_size - offset)
        data = _pread_all(fd, length, offset)
        digest = hashlib.sha256(data).digest()
        known = listed.get(number)
        if known and known.get("Size") == length and _part_matches(known, data, digest, self.config["sse"]):
            part = {"PartNumber": number, "ETag": known["ETag"]}
            if known.get("ChecksumSHA256"):
                part["ChecksumSHA256"] = known["ChecksumSHA256"]
            return part
        return self.client.upload_part(bucket, key, upload_id, number, data, digest)


def _part_matches(listed, data, digest, sse):
    checksum = listed.get("ChecksumSHA256")
    if checksum:
        return checksum == s3.b64_sha256(digest)
    if sse == "aws:kms":
        return False  # KMS ETags are not MD5s: re-send the part
    return listed.get("ETag", "").strip('"') == hashlib.md5(data).hexdigest()  # S3's ETag of a plain part is its MD5


def _pread_all(fd, length, offset=0):
    chunks = []
    remaining = length
    while remaining > 0:
        chunk = os.pread(fd, remaining, offset)
        if not chunk:
            raise OSError("file shrank while reading")
        chunks.append(chunk)
        offset += len(chunk)
        remaining -= len(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def _check_unchanged(fd, before):
    after = os.fstat(fd)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise OSError("file changed while it was uploaded; it will be sent again")
