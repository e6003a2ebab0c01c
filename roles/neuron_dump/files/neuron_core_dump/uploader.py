"""The uploader: drains the spool and uploads dump dirs to S3 (runs as root).

One pass:

1. claim every complete entry in ``incoming/`` into ``queue/`` (see :mod:`spool`);
2. group queued entries by (dump dir, owner uid): 64 ranks x 3 calls into one
   directory become one upload. A dump dir goes to ONE S3 prefix: the first one
   it was enqueued with (kept in its state); calls naming another prefix for the
   same dir (e.g. ``%p`` only in the prefix) are folded into it and listed in the
   manifest as ``also_requested_prefixes``: nothing is lost and no file is
   uploaded twice under different jobs;
3. schedule fairly: per uid oldest first, at most ``max_pending_dumps_per_uid`` dumps
   of a uid per pass and none of a uid past ``max_bytes_per_uid_per_hour`` (the rest
   is *held*: left queued, counted, resumed by a later pass), interleaved round-robin
   across uids, worked on by ``max_parallel_dumps`` threads; entries that arrive
   during the pass are claimed whenever a dump finishes, and a uid with nothing
   waiting goes first, so a flood's pass never delays another user's dump;
4. per dump dir, under an exclusive ``flock``: check the policy (allowed buckets,
   key prefixes, uids, groups), open the dir without following symlinks (only below
   a dump root, owner must match), run the extra capture once (rate-limited per
   host; its output is root's and never waited on), send every file through
   :mod:`transfer` (conditional: nothing another dump wrote is overwritten);
5. write the manifest last, as the completion marker;
6. drop the finished entries; failed ones stay queued with the error recorded;
   update ``status.json``, the cheap summary ``status`` answers from.

Manifests: see :mod:`manifest`. Files named ``*-manifest.json`` in a dump dir are
never uploaded (recorded as skipped): only the uploader writes manifests.

Refusals are not failures: a dump whose bucket or prefix is not allowed, whose uid
is not allowed, or whose bucket does not exist stays local, its entries are dropped,
and it is counted and listed in ``status`` without making the uploader unhealthy.

With ``--wait`` (the systemd service), dumps that failed on S3 itself are retried
with exponential backoff capped at ``uploader.retry_max_interval_seconds`` (one
HeadBucket probe per attempt, so a dead endpoint is not hammered), so uploads resume
within that long after an outage ends.
"""

import collections
import grp
import os
import pwd
import stat
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from . import adopt, capture, fsutil, hostinfo, keys, log, manifest, notify, s3, spool, state, transfer
from .progress import DumpProgress

REFUSED_HISTORY = 20


class Refused(Exception):
    """An entry that can never be uploaded (a security refusal: outside roots, foreign owner)."""


class PolicyRefused(Refused):
    """Refused by configuration or by S3 (bucket/prefix/uid not allowed, bucket missing): kept local."""


class RunResult:
    def __init__(self):
        self.uploaded = 0  # files uploaded in this run
        self.skipped = 0  # files already uploaded before
        self.groups_done = 0
        self.groups_failed = 0
        self.groups_deferred = 0
        self.local_only = 0
        self.refused = 0
        self.held = 0  # dumps left queued by the per-uid limits
        self.errors = []
        self.refusals = []  # {"dump_dir", "s3_prefix", "reason"}
        self.remote_failures = {}  # bucket -> error text, of groups that failed on S3 itself
        self.successes = 0
        self.busy = False  # another worker held the worker lock
        self.lock = threading.Lock()

    def as_dict(self):
        return {
            "uploaded_files": self.uploaded,
            "skipped_files": self.skipped,
            "dumps_done": self.groups_done,
            "dumps_failed": self.groups_failed,
            "dumps_deferred": self.groups_deferred,
            "dumps_local_only": self.local_only,
            "dumps_held": self.held,
            "entries_refused": self.refused,
            "refused": self.refusals,
            "errors": self.errors,
            "another_worker_running": self.busy,
        }


class _Group:
    """The queue entries of one dump dir and owner."""

    def __init__(self, dump_dir, uid):
        self.dump_dir = dump_dir
        self.uid = uid
        self.names = []
        self.prefixes = []  # distinct, in claim order
        self.first_ns = None
        self.instance_id = None

    def add(self, name, queued):
        entry = queued["entry"]
        self.names.append(name)
        if entry.get("s3_prefix") not in self.prefixes:
            self.prefixes.append(entry.get("s3_prefix"))
        claimed = int(queued.get("claimed_ns") or 0)
        self.first_ns = claimed if self.first_ns is None else min(self.first_ns, claimed)
        self.instance_id = self.instance_id or entry.get("instance_id")


class _Outcome:
    def __init__(self):
        self.uploaded = 0
        self.skipped = 0
        self.bytes = 0
        self.deferred = []
        self.failed = {}  # file name -> error text
        self.remote = None  # error text when S3 itself failed
        self.refusal = None  # S3 says the destination can never work


class Uploader:
    def __init__(self, config, client=None, logger=log):
        self.config = config
        self.logger = logger
        self.store = state.Store(config["state_dir"])
        self._client = client
        self._client_lock = threading.Lock()
        self._instance_id = None
        self._users = {}
        self._carried = False  # entries claimed during a pass for a dump already worked on in it
        self.notifier = notify.Notifier(config, logger)

    def close(self):
        try:
            self.notifier.close()
        finally:
            self.store.close()

    # --- helpers ------------------------------------------------------------------------------

    def client(self):
        with self._client_lock:
            if self._client is None:
                settings = self.config["uploader"]
                connections = self.config["s3"]["max_concurrency"] * 2 + settings["max_parallel_dumps"] + 4
                self._client = s3.Client(self.config["s3"], s3.make_boto_client(self.config["s3"], connections))
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

    def dump_instance_id(self, hook_instance_id):
        """The id a dump's capture and manifest files carry: DMI (trusted) where there is one,
        else the id the hook recorded from the runtime, else IMDS or the host name."""
        found = hostinfo.read_instance_id_file(self.config["hook"]["instance_id_file"])
        return found or hook_instance_id or self.instance_id()

    def user_name(self, uid):
        if uid not in self._users:
            try:
                self._users[uid] = pwd.getpwuid(uid).pw_name
            except (KeyError, OverflowError):
                self._users[uid] = str(uid)
        return self._users[uid]

    # --- a run --------------------------------------------------------------------------------

    def run(self, wait_for_all=False, worker=False):
        result = RunResult()
        self.instance_id()  # resolved once, before any thread needs it
        with spool.Spool(self.config["spool_dir"]) as queue:
            lock_fd = None
            try:
                if worker:
                    lock_fd = queue.worker_lock()
                    if lock_fd is None:
                        result.busy = True
                        return result
                while True:
                    self._passes(queue, result, wait_for_all)
                    if lock_fd is not None:
                        # release, then look again: a hook that found the lock held relies on us
                        os.close(lock_fd)
                        lock_fd = None
                        if not queue.has_incoming():
                            break
                        lock_fd = queue.worker_lock()
                        if lock_fd is None:
                            break  # the new holder will take it
                        continue
                    if wait_for_all and queue.has_incoming():
                        continue
                    break
            finally:
                if lock_fd is not None:
                    os.close(lock_fd)
            # a notify command still running must not hold back dumps that arrive meanwhile
            while not self.notifier.wait(0.5):
                if wait_for_all and queue.has_incoming():
                    self._passes(queue, result, wait_for_all)
        return result

    def _passes(self, queue, result, wait_for_all):
        """One pass; with ``wait_for_all`` more, while work is held back or S3 is down (with backoff)."""
        settings = self.config["uploader"]
        retry_until = time.monotonic() + settings["retry_window_seconds"]
        delay = 1.0
        while True:
            this_pass = RunResult()
            self._carried = False
            self._one_pass(queue, this_pass, wait_for_all)
            _merge(result, this_pass)
            self._record_status(this_pass, queue)
            if not wait_for_all:
                return
            if self._carried:
                continue  # more calls arrived for a dump of this pass: upload what they added
            if this_pass.held and (this_pass.groups_done or this_pass.local_only or this_pass.refused):
                continue  # the per-uid limits let the next dumps through now
            if not this_pass.remote_failures or time.monotonic() >= retry_until:
                return
            # S3 failed: back off, probe cheaply, retry everything once the probe answers
            bucket = sorted(this_pass.remote_failures)[0]
            while time.monotonic() < retry_until:
                time.sleep(min(delay, settings["retry_max_interval_seconds"]))
                delay = min(delay * 2, settings["retry_max_interval_seconds"])
                try:
                    self.client().probe(bucket)
                    break
                except Exception as exc:  # still down: wait longer
                    if not s3.is_remote_failure(exc) or s3.is_refusal(exc):
                        break  # S3 answers (even "no such bucket"): the next pass sorts it out
                    self.logger.info("S3 still unreachable (%s); next try in %.0f s" % (_describe(exc), delay))
            else:
                return

    def _one_pass(self, queue, result, wait_for_all):
        adopt.run(self.config, self.store.fd, self.logger)  # dumps containers wrote, no hook enqueued
        queue.claim(self.logger)
        entries = queue.entries(self.logger)
        groups = {}
        for name, queued in entries.items():
            key = (queued["entry"]["dump_dir"], queued.get("uid", -1))
            groups.setdefault(key, _Group(*key)).add(name, queued)
        pending = collections.deque(self._schedule(list(groups.values()), result))
        if not pending:
            return
        settings = self.config["uploader"]
        workers = self.config["s3"]["max_concurrency"]
        started = set(groups)  # keys of this pass: later entries for them wait for the next pass
        with ThreadPoolExecutor(max_workers=workers) as files, ThreadPoolExecutor(max_workers=workers) as parts:
            pools = (files, parts)
            with ThreadPoolExecutor(max_workers=settings["max_parallel_dumps"]) as dumps:
                running = set()
                while pending or running:
                    while pending and len(running) < settings["max_parallel_dumps"]:
                        group = pending.popleft()
                        running.add(
                            dumps.submit(self._process_group, group, entries, queue, result, wait_for_all, pools)
                        )
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()
                    self._admit_newcomers(queue, entries, started, pending)

    def _admit_newcomers(self, queue, entries, started, pending):
        """Entries that arrived during the pass: a uid with nothing waiting goes first (a victim of a
        flood is not made to wait for the flood's pass to end), others queue behind."""
        if not queue.has_incoming():
            return
        arrived = {}
        for name, queued in queue.claim(self.logger).items():
            key = (queued["entry"]["dump_dir"], queued.get("uid", -1))
            if key in started:
                self._carried = True  # that dump is being (or was) worked on in this pass: the next one re-checks
                continue
            entries[name] = queued
            arrived.setdefault(key, _Group(*key)).add(name, queued)
        waiting_uids = {group.uid for group in pending}
        for key, group in sorted(arrived.items(), key=lambda item: item[1].first_ns or 0):
            started.add(key)
            if group.uid in waiting_uids:
                pending.append(group)
            else:
                pending.appendleft(group)
                waiting_uids.add(group.uid)

    def _schedule(self, groups, result):
        """Round-robin across uids, oldest first within a uid, within the per-uid limits."""
        settings = self.config["uploader"]
        by_uid = {}
        for group in sorted(groups, key=lambda g: (g.first_ns or 0, g.dump_dir)):
            by_uid.setdefault(group.uid, []).append(group)
        over_bytes = self.store.uids_over_byte_quota(settings["max_bytes_per_uid_per_hour"])
        lanes = []
        for uid, lane in sorted(by_uid.items(), key=lambda item: item[1][0].first_ns or 0):
            if uid in over_bytes:
                result.held += len(lane)
                continue
            allowed = settings["max_pending_dumps_per_uid"]
            result.held += max(0, len(lane) - allowed)
            lanes.append(lane[:allowed])
        ordered = []
        for index in range(max((len(lane) for lane in lanes), default=0)):
            ordered.extend(lane[index] for lane in lanes if index < len(lane))
        return ordered

    # --- one dump -----------------------------------------------------------------------------

    def _process_group(self, group, entries, queue, result, wait_for_all, pools):
        where = "%s (uid %d)" % (keys.display(group.dump_dir), group.uid)
        try:
            outcome = self._process_dump(group, wait_for_all, pools)
        except Refused as exc:
            policy = isinstance(exc, PolicyRefused)
            message = "refused %s: %s (entry dropped, dump left on disk)" % (where, exc)
            (self.logger.warning if policy else self.logger.error)(message)
            with result.lock:
                result.refused += len(group.names)
                result.refusals.append(
                    {"dump_dir": keys.display(group.dump_dir), "uid": group.uid, "reason": keys.display(str(exc))}
                )
            for name in group.names:
                queue.remove(name)
            return
        except FileNotFoundError:
            self.logger.warning("dump dir %s no longer exists; entry dropped" % where)
            for name in group.names:
                queue.remove(name)
            return
        except Exception as exc:  # S3 down, lock timeout, disk trouble: keep the entries for a retry
            outcome = _Outcome()
            outcome.failed["(dump)"] = _describe(exc)
            if s3.is_remote_failure(exc):
                outcome.remote = _describe(exc)
        if outcome is None:  # local only
            with result.lock:
                result.local_only += 1
            for name in group.names:
                queue.remove(name)
            return
        with result.lock:
            result.uploaded += outcome.uploaded
            result.skipped += outcome.skipped
        if outcome.failed:
            message = "upload of %s failed: %s" % (
                where,
                "; ".join("%s: %s" % (keys.display(k), v) for k, v in sorted(outcome.failed.items())[:5]),
            )
            with result.lock:
                result.groups_failed += 1
                result.errors.append(message)
                if outcome.remote:
                    result.remote_failures.setdefault(_bucket_of(group), outcome.remote)
            self.logger.error(message)
            for name in group.names:
                queued = entries[name]
                queued["attempts"] = int(queued.get("attempts", 0)) + 1
                queued["last_error"] = message[:2000]
                queued["last_attempt_ns"] = time.time_ns()
                try:
                    queue.save(name, queued)
                except OSError as exc:
                    self.logger.error("cannot update queue entry %s: %s" % (name, exc))
            return
        with result.lock:
            result.successes += 1
        if outcome.deferred:
            with result.lock:
                result.groups_deferred += 1
            self.logger.info("%s: %d file(s) still being written; left queued" % (where, len(outcome.deferred)))
            return
        with result.lock:
            result.groups_done += 1
        if outcome.bytes and self.config["uploader"]["max_bytes_per_uid_per_hour"]:
            self.store.add_uid_bytes(group.uid, outcome.bytes)
        for name in group.names:
            queue.remove(name)

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

    def _check_uid(self, uid):
        settings = self.config["uploader"]
        uids, groups = settings["allowed_uids"], settings["allowed_groups"]
        if not uids and not groups:
            return
        if uid in uids:
            return
        if groups and _in_groups(uid, groups):
            return
        raise PolicyRefused("uid %d is not in uploader.allowed_uids / allowed_groups" % uid)

    def _target(self, prefix):
        """(bucket, key prefix) of an allowed S3 prefix, or PolicyRefused."""
        try:
            bucket, key_prefix = s3.parse_url(prefix)
            keys.check_prefix_room(key_prefix)
        except ValueError as exc:
            raise PolicyRefused(str(exc)) from None
        settings = self.config["s3"]
        if settings["allowed_buckets"] and bucket not in settings["allowed_buckets"]:
            raise PolicyRefused("bucket %s is not in s3.allowed_buckets" % bucket)
        allowed = [s3.parse_url(url) for url in settings["allowed_prefixes"]]
        if allowed:
            from .config import prefix_allowed

            if not prefix_allowed(bucket, key_prefix, allowed):
                raise PolicyRefused("s3://%s/%s is not below any of s3.allowed_prefixes" % (bucket, key_prefix))
        return bucket, key_prefix

    def _process_dump(self, group, wait_for_all, pools):
        """Upload one dump dir. Returns an _Outcome, or None when it is local only."""
        self._check_uid(group.uid)
        dump_fd, dump_info = self._open_dump(group.dump_dir, group.uid)
        try:
            with self.store.lock(group.dump_dir, self.config["uploader"]["lock_wait_seconds"]):
                progress = DumpProgress(self.store, group.dump_dir)
                progress.set_owner(group.uid, self.dump_instance_id(group.instance_id))
                prefix = progress.data.get("primary_prefix")
                if prefix is None:
                    prefix = next((p for p in group.prefixes if p is not None), None)
                target = None
                if prefix is not None:
                    try:
                        target = self._target(prefix)
                    except PolicyRefused as exc:
                        progress.refused(str(exc))
                        raise
                    progress.data["primary_prefix"] = prefix
                    others = set(progress.data.get("also_requested_prefixes") or [])
                    others.update(p for p in group.prefixes if p not in (None, prefix))
                    progress.data["also_requested_prefixes"] = sorted(others)
                if not progress.captured and self.config["capture"]["enabled"]:
                    self._capture(progress, dump_fd, dump_info)
                if target is None:
                    progress.local_only()
                    return None
                progress.use_prefix(prefix, *target)
                upload = transfer.Target(
                    target[0],
                    target[1],
                    group.uid,
                    self.user_name(group.uid),
                    progress.instance_id,
                    group.dump_dir,
                )
                outcome = self._upload_until_settled(dump_fd, dump_info, progress, upload, wait_for_all, pools)
                if outcome.refusal:
                    progress.refused(outcome.refusal)
                    raise PolicyRefused(outcome.refusal)
                return outcome
        finally:
            os.close(dump_fd)

    def _capture(self, progress, dump_fd, dump_info):
        settings = self.config["capture"]
        if not self.store.capture_slot(settings["min_interval_seconds"]):
            self.logger.info(
                "extra capture skipped for %s: another ran less than %ss ago on this host"
                % (keys.display(progress.dump_dir), settings["min_interval_seconds"])
            )
            progress.capture_done([], skipped_reason="rate limit")
            return
        owner = (dump_info.st_uid, dump_info.st_gid) if settings["readable_by_owner"] else None
        written = capture.capture_all(settings, dump_fd, progress.instance_id, owner, self.logger)
        progress.capture_done(written)

    def _upload_until_settled(self, dump_fd, dump_info, progress, target, wait_for_all, pools):
        settings = self.config["uploader"]
        deadline = time.monotonic() + (settings["max_settle_wait_seconds"] if wait_for_all else 0)
        total = _Outcome()
        while True:
            outcome = self._upload_dir(dump_fd, progress, target, pools)
            total.uploaded += outcome.uploaded
            total.skipped += outcome.skipped
            total.bytes += outcome.bytes
            total.failed.update(outcome.failed)
            total.remote = total.remote or outcome.remote
            total.refusal = total.refusal or outcome.refusal
            total.deferred = outcome.deferred
            if outcome.failed or not outcome.deferred or time.monotonic() >= deadline:
                break
            time.sleep(min(max(settings["settle_seconds"], 0.05), max(0.0, deadline - time.monotonic())))
        progress.save()
        if not total.failed and not total.deferred:
            try:
                before = (progress.prefix.get("manifest") or {}).get("fingerprint")
                manifest.write(self.client(), progress, dump_info, target, self.user_name, self.logger)
                written = progress.prefix.get("manifest") or {}
                if written.get("fingerprint") != before:  # an unchanged manifest is not news
                    self.notifier.submit(progress.dump_dir, progress.data, target.bucket, target.key_prefix,
                                         written.get("key"), progress.instance_id)  # fmt: skip
            except Exception as exc:  # the manifest is retried with the entry on the next run
                total.failed["(manifest)"] = _describe(exc)
                if s3.is_refusal(exc):
                    total.refusal = "S3 refused %s: %s" % (target.bucket, _describe(exc))
                elif s3.is_remote_failure(exc):
                    total.remote = _describe(exc)
        return total

    # --- the files ------------------------------------------------------------------------------

    def _upload_dir(self, dump_fd, progress, target, pools):
        outcome = _Outcome()
        settle_ns = int(self.config["uploader"]["settle_seconds"] * 1e9)
        now_ns = time.time_ns()
        own = progress.own_files()
        progress.prefix["skipped"] = {}
        todo = []
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
                reason = "symlink: not followed" if stat.S_ISLNK(info.st_mode) else "not a regular file"
                progress.file_skipped(name, reason, info.st_uid)
                if stat.S_ISLNK(info.st_mode):
                    self.logger.warning(
                        "%s/%s is a symlink: not followed, not uploaded"
                        % (keys.display(progress.dump_dir), keys.display(name))
                    )
                continue
            known = progress.known(name)
            if known and (known.get("size"), known.get("mtime_ns"), known.get("ino")) == (
                info.st_size,
                info.st_mtime_ns,
                info.st_ino,
            ):
                outcome.skipped += 1
                continue
            if name not in own and now_ns - info.st_mtime_ns < settle_ns:
                outcome.deferred.append(name)
                continue
            todo.append(name)
        if todo:
            self._transfer(dump_fd, todo, progress, target, outcome, pools)
        return outcome

    def _transfer(self, dump_fd, names, progress, target, outcome, pools):
        files, parts = pools
        sender = transfer.Transfer(self.client(), self.config["s3"], self.logger, parts)
        futures = {}
        own = progress.own_files()
        for name in names:
            futures[name] = files.submit(
                sender.send,
                dump_fd,
                name,
                target,
                progress.known(name),
                progress.pending_multipart(name),
                progress,
                name in own,
            )
        for name, future in futures.items():
            try:
                answer = future.result()
            except transfer.Skip as exc:
                progress.file_skipped(name, str(exc))
                self.logger.warning("%s/%s not uploaded: %s" % (keys.display(target.dump_dir), keys.display(name), exc))
                continue
            except Exception as exc:  # recorded per file; other files go on unless S3 itself failed
                text = _describe(exc)
                outcome.failed[name] = text
                if s3.is_refusal(exc):
                    outcome.refusal = "S3 refused %s: %s" % (target.bucket, text)
                    sender.abort_reason = text
                elif s3.is_remote_failure(exc):
                    outcome.remote = outcome.remote or text
                    # retries are spent or the error is permanent (credentials, access): the other
                    # files would only fail the same way, slowly
                    sender.abort_reason = sender.abort_reason or text
                continue
            progress.file_done(answer)
            if answer.status == transfer.SENT:
                outcome.uploaded += 1
                outcome.bytes += answer.info.st_size
            else:
                outcome.skipped += 1

    # --- status ----------------------------------------------------------------------------------

    def _record_status(self, result, queue):
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            entries = queue.entries(self.logger)
        except OSError:
            entries = {}
        by_uid = {}
        dirs = set()
        failing = 0
        for queued in entries.values():
            dirs.add(queued["entry"]["dump_dir"])
            uid = str(queued.get("uid", -1))
            by_uid[uid] = by_uid.get(uid, 0) + 1
            failing += 1 if queued.get("last_error") else 0

        def change(status):
            status["last_run"] = now
            status["last_run_ns"] = time.time_ns()
            if result.errors:
                status["last_error"] = keys.display(result.errors[-1][:2000])
                status["last_error_at"] = now
            elif result.groups_done and not result.groups_deferred:
                status["last_error"] = None  # everything queued went through: the old error is resolved
            if result.uploaded or result.successes:
                status["last_success"] = now
            if result.successes:
                status["broken"] = None
            elif result.remote_failures:
                status["broken"] = "every upload is failing on S3: %s" % keys.display(
                    sorted(result.remote_failures.items())[0][1][:500]
                )
                status["broken_since"] = status.get("broken_since") or now
            if not entries:
                status["broken"] = None  # nothing waits (uploaded, refused or deleted): nothing is failing
            if not status.get("broken"):
                status["broken_since"] = None
            status["queue"] = {"entries": len(entries), "dumps": len(dirs), "by_uid": by_uid, "failing": failing}
            status["held"] = result.held
            refused = status.get("refused") or {"total": 0, "recent": []}
            refused["total"] = int(refused.get("total") or 0) + result.refused
            refused["recent"] = ((refused.get("recent") or []) + [dict(r, at=now) for r in result.refusals])[
                -REFUSED_HISTORY:
            ]
            status["refused"] = refused
            status["last_result"] = result.as_dict()

        try:
            self.store.update_status(change)
        except Exception as exc:  # status is informational; the upload itself is done
            self.logger.warning("cannot update status: %s" % exc)


def _merge(total, part):
    for name in ("uploaded", "skipped", "groups_done", "groups_deferred", "local_only", "refused", "successes"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    # failures and holds are those of the last pass: a retry that went through resolves them
    total.groups_failed = part.groups_failed
    total.held = part.held
    total.errors = part.errors if part.errors or part.successes else total.errors
    total.remote_failures = part.remote_failures
    total.refusals.extend(part.refusals)


def _bucket_of(group):
    for prefix in group.prefixes:
        if prefix:
            try:
                return s3.parse_url(prefix)[0]
            except ValueError:
                continue
    return ""


def _in_groups(uid, allowed):
    try:
        user = pwd.getpwuid(uid)
    except KeyError:
        return False
    gids = {user.pw_gid}
    names = set()
    for group in grp.getgrall():
        if user.pw_name in group.gr_mem or group.gr_gid == user.pw_gid:
            gids.add(group.gr_gid)
            names.add(group.gr_name)
    return any((item in gids) if isinstance(item, int) else (item in names) for item in allowed)


def _describe(exc):
    try:
        return s3.describe_error(exc)
    except Exception:  # describing an error must not raise another
        return repr(exc)
