"""The uploader: drains the spool and uploads dump dirs to S3 (runs as root).

One run:

1. claim every complete entry in ``incoming/`` into ``queue/`` (see :mod:`spool`);
2. coalesce queued entries by (dump dir, S3 prefix, owner uid): 64 ranks x 3 calls
   into one directory become one upload;
3. per dump dir, under an exclusive ``flock``: open the dir without following
   symlinks (only below a configured dump root; owner must match the entry's
   owner), run the extra capture once, then upload every settled regular file whose
   (size, mtime, inode) is not yet recorded as uploaded, small files with one PUT,
   large ones multipart, all through one thread pool;
4. write ``<instance id>-manifest.json`` (sha256 per file) last, as the completion marker;
5. drop the finished entries; failed ones stay queued with the error recorded.

A dump is never deleted here, and an entry is dropped only when its upload is
complete, when it has no S3 prefix (done-local), or when it can never succeed
(refused: outside the roots, symlinked, foreign owner, bucket not allowed); the
dump itself then stays on disk for ``gc``.
"""

import hashlib
import os
import stat
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from . import capture, fastjson, fsutil, hostinfo, log, spool, state

MANIFEST_SUFFIX = "-manifest.json"
MANIFEST_SCHEMA = "neuron-core-dump/manifest/v1"


class Refused(Exception):
    """An entry that can never be uploaded (a security or configuration refusal)."""


class _Aborted(Exception):
    """A file not tried because S3 already failed for another file of the same dump."""


class RunResult:
    def __init__(self):
        self.uploaded = 0  # files uploaded in this run
        self.skipped = 0  # files already uploaded before
        self.groups_done = 0
        self.groups_failed = 0
        self.groups_deferred = 0
        self.local_only = 0
        self.refused = 0
        self.errors = []
        self.busy = False  # another worker held the worker lock

    def as_dict(self):
        return {
            "uploaded_files": self.uploaded,
            "skipped_files": self.skipped,
            "dumps_done": self.groups_done,
            "dumps_failed": self.groups_failed,
            "dumps_deferred": self.groups_deferred,
            "dumps_local_only": self.local_only,
            "entries_refused": self.refused,
            "errors": self.errors,
            "another_worker_running": self.busy,
        }


class _Outcome:
    def __init__(self):
        self.uploaded = 0
        self.skipped = 0
        self.deferred = []
        self.failed = {}  # file name -> error text


class _Upload:
    """One file in flight: open fd, identity, digest, multipart bookkeeping."""

    def __init__(self, name, key):
        self.name = name
        self.key = key
        self.fd = None
        self.info = None
        self.sha256 = None
        self.first = True
        self.upload_id = None
        self.part_size = 0
        self.listed = {}
        self.parts = []
        self.waiting = 0  # multipart tasks (parts + digest) still running
        self.error = None
        self.refusal = None

    def identity(self):
        return {"size": self.info.st_size, "mtime_ns": self.info.st_mtime_ns, "ino": self.info.st_ino}


class Uploader:
    def __init__(self, config, client=None, logger=log):
        self.config = config
        self.logger = logger
        self.store = state.Store(config["state_dir"])
        self._client = client
        self._instance_id = None
        self._last_save = 0.0
        self._abort = None  # set when S3 failed for good: the rest of the dump is not tried

    def close(self):
        self.store.close()

    # --- helpers ------------------------------------------------------------------------------

    def client(self):
        if self._client is None:
            from . import s3

            self._client = s3.Client(self.config["s3"])
        return self._client

    def instance_id(self):
        if self._instance_id is None:
            hook = self.config["hook"]
            found, source = hostinfo.instance_id(hook["instance_id_file"], None, self.config["state_dir"])
            if source == "hostname" and self.config["uploader"]["imds_enabled"]:
                from . import imds

                try:
                    answer = imds.fetch_instance_id(self.config["uploader"]["imds_timeout_seconds"])
                    if answer:
                        found = answer
                        imds.cache_instance_id(self.config["state_dir"], answer)
                except Exception as exc:  # no IMDS (not EC2, hop limit): the hostname-based id is used
                    self.logger.info("IMDSv2 instance id unavailable: %s" % exc)
            self._instance_id = found
        return self._instance_id

    # --- a run --------------------------------------------------------------------------------

    def run(self, wait_for_all=False, worker=False):
        result = RunResult()
        incoming_fd, queue_fd = spool.open_spool_dirs(self.config["spool_dir"])
        lock_fd = None
        try:
            if worker:
                lock_fd = _try_worker_lock(self.config["spool_dir"])
                if lock_fd is None:
                    result.busy = True
                    return result
            while True:
                self._one_pass(incoming_fd, queue_fd, result, wait_for_all)
                if lock_fd is not None:
                    # release, then look again: a hook that found the lock held relies on us
                    os.close(lock_fd)
                    lock_fd = None
                    if not _has_incoming(incoming_fd):
                        break
                    lock_fd = _try_worker_lock(self.config["spool_dir"])
                    if lock_fd is None:
                        break  # the new holder will take it
                    continue
                if wait_for_all and _has_incoming(incoming_fd):
                    continue
                break
        finally:
            if lock_fd is not None:
                os.close(lock_fd)
            os.close(incoming_fd)
            os.close(queue_fd)
        self._record_status(result)
        return result

    def _one_pass(self, incoming_fd, queue_fd, result, wait_for_all):
        spool.claim_incoming(incoming_fd, queue_fd, self.logger)
        queue = spool.load_queue(queue_fd, self.logger)
        groups = {}
        for name, queued in queue.items():
            entry = queued["entry"]
            key = (entry["dump_dir"], entry.get("s3_prefix"), queued.get("uid", -1))
            groups.setdefault(key, []).append(name)
        for (dump_dir, prefix, uid), names in sorted(groups.items(), key=lambda item: str(item[0])):
            self._process_group(dump_dir, prefix, uid, names, queue, queue_fd, result, wait_for_all)

    def _process_group(self, dump_dir, prefix, uid, names, queue, queue_fd, result, wait_for_all):
        where = "%s -> %s" % (dump_dir, prefix or "(local only)")
        hook_ids = [queue[name]["entry"].get("instance_id") for name in names]
        try:
            outcome = self._process_dump(dump_dir, prefix, uid, wait_for_all, next(filter(None, hook_ids), None))
        except Refused as exc:
            result.refused += len(names)
            self.logger.error("refused %s: %s (entry dropped, dump left on disk)" % (where, exc))
            for name in names:
                spool.remove_queue_entry(queue_fd, name)
            return
        except FileNotFoundError:
            self.logger.warning("dump dir %s no longer exists; entry dropped" % dump_dir)
            for name in names:
                spool.remove_queue_entry(queue_fd, name)
            return
        except Exception as exc:  # S3 down, lock timeout, disk trouble: keep the entries for a retry
            outcome = _Outcome()
            outcome.failed["(dump)"] = _describe(exc)
        if outcome is None:  # local only
            result.local_only += 1
            for name in names:
                spool.remove_queue_entry(queue_fd, name)
            return
        result.uploaded += outcome.uploaded
        result.skipped += outcome.skipped
        if outcome.failed:
            result.groups_failed += 1
            message = "upload of %s failed: %s" % (
                where,
                "; ".join("%s: %s" % item for item in sorted(outcome.failed.items())[:5]),
            )
            result.errors.append(message)
            self.logger.error(message)
            for name in names:
                queued = queue[name]
                queued["attempts"] = int(queued.get("attempts", 0)) + 1
                queued["last_error"] = message[:2000]
                queued["last_attempt_ns"] = time.time_ns()
                try:
                    spool.save_queue_entry(queue_fd, name, queued)
                except OSError as exc:
                    self.logger.error("cannot update queue entry %s: %s" % (name, exc))
            return
        if outcome.deferred:
            result.groups_deferred += 1
            self.logger.info("%s: %d file(s) still being written; left queued" % (where, len(outcome.deferred)))
            return
        result.groups_done += 1
        for name in names:
            spool.remove_queue_entry(queue_fd, name)

    def _open_dump(self, dump_dir, uid):
        root = fsutil.find_root(dump_dir, self.config["dump_roots"])
        if root is None:
            raise Refused("not below a configured dump root")
        parts = fsutil.split_components(dump_dir)
        relative = parts[len(fsutil.split_components(root)) :]
        if not relative:
            raise Refused("is a dump root itself, not a dump dir below it")
        try:
            root_fd = fsutil.walk(root)
        except fsutil.UnsafePathError as exc:
            raise Refused("dump root: %s" % exc.strerror) from None
        try:
            dump_fd = fsutil.walk_below(root_fd, relative)
        except fsutil.UnsafePathError as exc:
            raise Refused("%s (%s)" % (exc.strerror, exc.filename)) from None
        finally:
            os.close(root_fd)
        info = os.fstat(dump_fd)
        if uid not in (0, info.st_uid):
            os.close(dump_fd)
            raise Refused("dump dir owned by uid %d, entry written by uid %d" % (info.st_uid, uid))
        return dump_fd, info

    def dump_instance_id(self, hook_instance_id):
        """The id a dump's capture and manifest files carry: DMI (trusted) where there is one,
        else the id the hook recorded from the runtime, else IMDS or the host name."""
        found = hostinfo.read_instance_id_file(self.config["hook"]["instance_id_file"])
        return found or hook_instance_id or self.instance_id()

    def _process_dump(self, dump_dir, prefix, uid, wait_for_all, hook_instance_id=None):
        """Upload one dump dir. Returns an _Outcome, or None when it is local only."""
        target = None
        if prefix is not None:
            from . import s3

            try:
                target = s3.parse_url(prefix)
            except ValueError as exc:
                raise Refused(str(exc)) from None
            allowed = self.config["s3"]["allowed_buckets"]
            if allowed and target[0] not in allowed:
                raise Refused("bucket %s is not in s3.allowed_buckets" % target[0])
        dump_fd, dump_info = self._open_dump(dump_dir, uid)
        try:
            with self.store.lock(dump_dir, self.config["uploader"]["lock_wait_seconds"]):
                dump_state = self.store.load_dump(dump_dir)
                dump_state["uid"] = uid
                if not dump_state.get("instance_id"):
                    dump_state["instance_id"] = self.dump_instance_id(hook_instance_id)
                if not dump_state.get("captured_ns") and self.config["capture"]["enabled"]:
                    capture.capture_all(
                        self.config["capture"],
                        dump_fd,
                        dump_state["instance_id"],
                        dump_info.st_uid,
                        dump_info.st_gid,
                        self.logger,
                    )
                    dump_state["captured_ns"] = time.time_ns()
                    self.store.save_dump(dump_state)
                if target is None:
                    dump_state["local_only"] = True
                    self.store.save_dump(dump_state)
                    return None
                bucket, key_prefix = target
                prefix_state = dump_state["prefixes"].setdefault(
                    prefix, {"bucket": bucket, "key_prefix": key_prefix, "files": {}, "multipart": {}}
                )
                prefix_state.setdefault("files", {})
                prefix_state.setdefault("multipart", {})
                return self._upload_until_settled(dump_fd, uid, dump_state, prefix_state, wait_for_all)
        finally:
            os.close(dump_fd)

    def _upload_until_settled(self, dump_fd, uid, dump_state, prefix_state, wait_for_all):
        settings = self.config["uploader"]
        deadline = time.monotonic() + (settings["max_settle_wait_seconds"] if wait_for_all else 0)
        total = _Outcome()
        while True:
            outcome = self._upload_dir(dump_fd, uid, dump_state, prefix_state)
            total.uploaded += outcome.uploaded
            total.skipped += outcome.skipped
            total.failed.update(outcome.failed)
            total.deferred = outcome.deferred
            if outcome.failed or not outcome.deferred or time.monotonic() >= deadline:
                break
            time.sleep(min(max(settings["settle_seconds"], 0.05), max(0.0, deadline - time.monotonic())))
        if not total.failed and not total.deferred:
            try:
                self._write_manifest(dump_state, prefix_state)
            except Exception as exc:  # the manifest is retried with the entry on the next run
                total.failed["(manifest)"] = _describe(exc)
        return total

    # --- the files ------------------------------------------------------------------------------

    def _upload_dir(self, dump_fd, uid, dump_state, prefix_state):
        outcome = _Outcome()
        settle_ns = int(self.config["uploader"]["settle_seconds"] * 1e9)
        now_ns = time.time_ns()
        manifest_name = dump_state["instance_id"] + MANIFEST_SUFFIX
        known_files = prefix_state["files"]
        todo = []
        for name in sorted(os.listdir(dump_fd)):
            if name.startswith(".") or name == manifest_name:
                continue  # temp files of writers in progress; our own marker name
            try:
                info = os.lstat(name, dir_fd=dump_fd)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(info.st_mode):
                if stat.S_ISLNK(info.st_mode):
                    self.logger.warning(
                        "%s/%s is a symlink: not followed, not uploaded" % (dump_state["dump_dir"], name)
                    )
                continue
            known = known_files.get(name)
            if known and (known.get("size"), known.get("mtime_ns"), known.get("ino")) == (
                info.st_size,
                info.st_mtime_ns,
                info.st_ino,
            ):
                outcome.skipped += 1
                continue
            if now_ns - info.st_mtime_ns < settle_ns:
                outcome.deferred.append(name)
                continue
            todo.append(name)
        if todo:
            self._transfer(dump_fd, uid, todo, dump_state, prefix_state, outcome)
        return outcome

    def _transfer(self, dump_fd, uid, names, dump_state, prefix_state, outcome):
        """Upload ``names`` through one pool: whole small files and parts of large ones."""
        s3_settings = self.config["s3"]
        client = self.client()
        bucket = prefix_state["bucket"]
        from . import s3

        uploads = {}
        self._abort = None
        with ThreadPoolExecutor(max_workers=s3_settings["max_concurrency"]) as pool:
            futures = {}
            for name in names:
                upload = _Upload(name, s3.join_key(prefix_state["key_prefix"], name))
                known = prefix_state["files"].get(name)
                upload.first = known is None
                uploads[name] = upload
                pending = dict(prefix_state["multipart"].get(name) or {})
                futures[pool.submit(self._prepare, client, dump_fd, uid, bucket, upload, known, pending)] = (
                    "prepare",
                    upload,
                )
            while futures:
                done, _unused = wait(list(futures), return_when=FIRST_COMPLETED)
                for future in done:
                    step, upload = futures.pop(future)
                    try:
                        answer = future.result()
                    except (Refused, fsutil.UnsafePathError, FileNotFoundError) as exc:
                        answer = "refused"  # this file only: skipped, never followed or sent
                        upload.refusal = getattr(exc, "strerror", None) or str(exc)
                    except Exception as exc:  # recorded per file; other files go on unless S3 itself failed
                        upload.error = upload.error or _describe(exc)
                        answer = None
                        if self._abort is None and _is_remote_failure(exc):
                            # retries are spent or the error is permanent (credentials, access, bucket):
                            # the other files would only fail the same way, slowly
                            self._abort = upload.error
                    if step == "prepare" and answer == "multipart" and upload.error is None:
                        self._multipart_started(upload, prefix_state, dump_state)
                        # the parts and the whole-file SHA-256 (for the manifest) run side by side
                        futures[pool.submit(_digest, upload)] = ("digest", upload)
                        upload.waiting = 1
                        for part_number in range(1, _part_count(upload.info.st_size, upload.part_size) + 1):
                            upload.waiting += 1
                            futures[pool.submit(self._part, client, bucket, upload, part_number)] = ("part", upload)
                        continue
                    if step in ("part", "digest"):
                        upload.waiting -= 1
                        if step == "part" and answer is not None:
                            upload.parts.append(answer)
                        if upload.waiting > 0:
                            continue
                        if upload.error is None:
                            futures[pool.submit(self._complete, client, bucket, upload)] = ("complete", upload)
                            continue
                    elif step == "complete" and upload.error is None:
                        prefix_state["multipart"].pop(upload.name, None)
                    self._finish(upload, answer, prefix_state, dump_state, outcome)
        for upload in uploads.values():
            if upload.fd is not None:
                os.close(upload.fd)
        self._save(dump_state, force=True)

    def _finish(self, upload, answer, prefix_state, dump_state, outcome):
        if upload.fd is not None:
            os.close(upload.fd)
            upload.fd = None
        if upload.error is not None:
            outcome.failed[upload.name] = upload.error
            self._save(dump_state, force=True)  # keeps a multipart id for resuming
            return
        if answer == "refused":
            self.logger.warning(
                "%s/%s not uploaded: %s" % (dump_state["dump_dir"], upload.name, upload.refusal or "refused")
            )
            return
        if answer in ("same", "exists", "uploaded", "completed"):
            entry = upload.identity()
            entry.update({"sha256": upload.sha256.hexdigest(), "key": upload.key, "uploaded_ns": time.time_ns()})
            prefix_state["files"][upload.name] = entry
            if answer in ("uploaded", "completed"):
                outcome.uploaded += 1
            else:
                outcome.skipped += 1
            self._save(dump_state)

    def _save(self, dump_state, force=False):
        """Save progress at most every 0.5 s (and always when forced): a lost update only means a re-check."""
        now = time.monotonic()
        if force or now - self._last_save >= 0.5:
            self.store.save_dump(dump_state)
            self._last_save = now

    def _prepare(self, client, dump_fd, uid, bucket, upload, known, pending):
        """Open and check a file; upload it at once when small, else set up its multipart upload.

        Runs in the pool.
        """
        from . import s3

        self._check_abort()
        fd, info = fsutil.open_regular(dump_fd, upload.name)
        upload.fd = fd
        upload.info = info
        if info.st_nlink != 1:
            raise Refused("has %d hard links" % info.st_nlink)
        if uid not in (0, info.st_uid):
            raise Refused("owned by uid %d, not the dump's uid %d" % (info.st_uid, uid))
        size = info.st_size
        if size >= self.config["s3"]["multipart_threshold_bytes"]:
            return self._prepare_multipart(client, bucket, upload, pending)
        data = _pread_all(fd, size)
        upload.sha256 = hashlib.sha256(data)
        digest = upload.sha256.digest()
        if known and known.get("sha256") == upload.sha256.hexdigest() and known.get("size") == size:
            return "same"  # touched but unchanged: nothing to send
        if self.config["s3"]["head_before_upload"] and client.matches(
            client.head(bucket, upload.key), size, digest, data
        ):
            return "exists"
        conditional = self.config["s3"]["conditional_put"] and upload.first
        try:
            client.put_bytes(bucket, upload.key, data, digest, if_none_match=conditional)
        except Exception as exc:
            if not s3.is_precondition_failed(exc):
                raise
            # someone else wrote this key first: fine when it holds exactly our bytes
            if client.matches(client.head(bucket, upload.key), size, digest, data):
                return "exists"
            self.logger.warning("s3://%s/%s exists with other content; overwriting" % (bucket, upload.key))
            client.put_bytes(bucket, upload.key, data, digest)
        _check_unchanged(fd, info)
        return "uploaded"

    def _prepare_multipart(self, client, bucket, upload, pending):
        """Resume a saved multipart upload of this very file, or start a new one."""
        size = upload.info.st_size
        # S3 allows 10,000 parts: very large files get larger parts
        upload.part_size = max(self.config["s3"]["multipart_chunk_bytes"], -(-size // 10000))
        if pending and pending.get("upload_id"):
            # same inode, size and mtime: the same file; each reused part is still checked by its checksum
            same_file = all(pending.get(k) == v for k, v in upload.identity().items())
            listed = client.list_parts(bucket, upload.key, pending["upload_id"]) if same_file else None
            if listed is not None:
                upload.upload_id = pending["upload_id"]
                upload.part_size = pending.get("part_size") or upload.part_size
                upload.listed = listed
                self.logger.info("resuming multipart upload of %s (%d parts already there)" % (upload.key, len(listed)))
                return "multipart"
            client.abort_multipart(bucket, upload.key, pending["upload_id"])
        upload.upload_id = client.create_multipart(bucket, upload.key)
        return "multipart"

    def _multipart_started(self, upload, prefix_state, dump_state):
        entry = upload.identity()
        entry.update({"upload_id": upload.upload_id, "key": upload.key, "part_size": upload.part_size})
        prefix_state["multipart"][upload.name] = entry
        self.store.save_dump(dump_state)  # saved before any part is sent: a SIGKILL can resume

    def _check_abort(self):
        if self._abort is not None:
            raise _Aborted("not tried: %s" % self._abort)

    def _part(self, client, bucket, upload, number):
        if upload.error is not None:
            return None  # the file already failed: do not spend bandwidth on it
        self._check_abort()
        offset = (number - 1) * upload.part_size
        length = min(upload.part_size, upload.info.st_size - offset)
        data = _pread_all(upload.fd, length, offset)
        digest = hashlib.sha256(data).digest()
        listed = upload.listed.get(number)
        if listed and listed.get("Size") == length and _part_matches(listed, data, digest, self.config["s3"]["sse"]):
            part = {"PartNumber": number, "ETag": listed["ETag"]}
            if listed.get("ChecksumSHA256"):
                part["ChecksumSHA256"] = listed["ChecksumSHA256"]
            return part
        return client.upload_part(bucket, upload.key, upload.upload_id, number, data, digest)

    def _complete(self, client, bucket, upload):
        from . import s3

        _check_unchanged(upload.fd, upload.info)
        conditional = self.config["s3"]["conditional_put"] and upload.first
        try:
            client.complete_multipart(bucket, upload.key, upload.upload_id, upload.parts, if_none_match=conditional)
        except Exception as exc:
            if not s3.is_precondition_failed(exc):
                raise
            head = client.head(bucket, upload.key)
            if head is not None and head.get("ContentLength") == upload.info.st_size:
                client.abort_multipart(bucket, upload.key, upload.upload_id)
                return "exists"
            client.complete_multipart(bucket, upload.key, upload.upload_id, upload.parts)
        return "completed"

    # --- manifest --------------------------------------------------------------------------------

    def _write_manifest(self, dump_state, prefix_state):
        files = prefix_state["files"]
        listing = [
            {"name": name, "key": entry.get("key"), "size": entry.get("size"), "sha256": entry.get("sha256")}
            for name, entry in sorted(files.items())
        ]
        fingerprint = hashlib.sha256(fastjson.dumps(listing).encode("ascii")).hexdigest()
        previous = prefix_state.get("manifest") or {}
        if previous.get("fingerprint") == fingerprint:
            return
        from . import s3

        instance_id = dump_state["instance_id"]
        name = instance_id + MANIFEST_SUFFIX
        document = {
            "schema": MANIFEST_SCHEMA,
            "instance_id": instance_id,
            "hostname": hostinfo.hostname(),
            "dump_dir": dump_state["dump_dir"],
            "s3_prefix": "s3://%s/%s" % (prefix_state["bucket"], prefix_state["key_prefix"]),
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": listing,
        }
        data = fastjson.dumps(document, indent=1).encode("ascii")
        key = s3.join_key(prefix_state["key_prefix"], name)
        self.client().put_bytes(
            prefix_state["bucket"], key, data, hashlib.sha256(data).digest(), content_type="application/json"
        )
        prefix_state["manifest"] = {"key": key, "fingerprint": fingerprint, "uploaded_ns": time.time_ns()}
        prefix_state["complete_ns"] = time.time_ns()
        self.store.save_dump(dump_state)

    # --- status ----------------------------------------------------------------------------------

    def _record_status(self, result):
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

        def change(status):
            status["last_run"] = now
            if result.errors:
                status["last_error"] = result.errors[-1][:2000]
                status["last_error_at"] = now
            elif result.groups_done and not result.groups_deferred:
                status["last_error"] = None  # everything queued went through: the old error is resolved
            if result.uploaded or (result.groups_done and not result.errors):
                status["last_success"] = now
            status["last_result"] = result.as_dict()

        try:
            self.store.update_status(change)
        except Exception as exc:  # status is informational; the upload itself is done
            self.logger.warning("cannot update status: %s" % exc)


def _is_remote_failure(exc):
    """An S3/botocore failure (as opposed to a local file problem)."""
    if isinstance(exc, _Aborted):
        return False
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        from .s3 import S3Error
    except ImportError:
        return False
    return isinstance(exc, (BotoCoreError, ClientError, S3Error))


def _part_count(size, part_size):
    return max(1, (size + part_size - 1) // part_size)


def _part_matches(listed, data, digest, sse):
    from . import s3

    checksum = listed.get("ChecksumSHA256")
    if checksum:
        return checksum == s3.b64_sha256(digest)
    if sse == "aws:kms":
        return False  # KMS ETags are not MD5s: re-send the part
    return listed.get("ETag", "").strip('"') == hashlib.md5(data).hexdigest()  # S3's ETag of a plain part is its MD5


def _digest(upload):
    """Whole-file SHA-256 of a multipart upload (for the state and the manifest)."""
    from . import s3

    upload.sha256 = s3.sha256_of_fd(upload.fd, upload.info.st_size)


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


def _describe(exc):
    try:
        from . import s3

        return s3.describe_error(exc)
    except Exception:  # describing an error must not raise another
        return repr(exc)


def _try_worker_lock(spool_dir):
    import fcntl

    fd = os.open(os.path.join(spool_dir, "worker.lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _has_incoming(incoming_fd):
    return any(not name.startswith(".") for name in os.listdir(incoming_fd))
