"""The uploader: drains the spool and uploads dump dirs to S3 (runs as root).

One pass:

1. claim every complete entry in ``incoming/`` into ``queue/`` (see :mod:`spool`);
2. group queued entries by (dump dir, owner uid) and order them fairly (:mod:`schedule`:
   round-robin across uids, per-uid limits; the rest is held for a later pass), worked
   on by ``max_parallel_dumps`` threads; entries that arrive during the pass are claimed
   whenever a dump finishes, and a uid with nothing waiting goes first. A dump dir goes
   to ONE S3 prefix: the first one it was enqueued with (kept in its state); calls naming
   another prefix for the same dir (e.g. ``%p`` only in the prefix) are folded into it
   and listed in the manifest as ``also_requested_prefixes``: nothing is lost and no file
   is uploaded twice under different jobs;
3. per dump dir, under an exclusive ``flock``: check the policy (:mod:`policy`: allowed
   buckets, key prefixes, uids, groups; the dir opened without following symlinks, only
   below a dump root, owner must match), run the extra capture once (rate-limited per
   host; its output is root's and never waited on), send every file :mod:`transfer`
   selects (conditional: nothing another dump wrote is overwritten), the state saved by
   the dump's :class:`progress.DumpProgress`;
4. write the manifest last, as the completion marker (:mod:`manifest`);
5. drop the finished entries; failed ones stay queued with the error recorded;
   update the cheap summary ``status`` answers from (:func:`status.record_pass`).

Files named ``*-manifest.json`` in a dump dir are never uploaded (recorded as skipped):
only the uploader writes manifests.

Refusals are not failures: a dump whose bucket or prefix is not allowed, whose uid
is not allowed, or whose bucket does not exist stays local, its entries are dropped,
and it is counted and listed in ``status`` without making the uploader unhealthy.

With ``--wait`` (the systemd service), dumps that failed on S3 itself are retried
with exponential backoff capped at ``uploader.retry_max_interval_seconds`` (one
HeadBucket probe per attempt, so a dead endpoint is not hammered), so uploads resume
within that long after an outage ends.
"""

import collections
import os
import pwd
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from . import adopt, capture, hostinfo, imds, keys, log, manifest, notify, s3, schedule, spool, state, status, transfer
from .policy import PolicyRefused, Refused, check_uid, open_dump
from .policy import target as allowed_target
from .progress import DumpProgress


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


class _Outcome:
    """What happened to one dump dir in this pass."""

    def __init__(self):
        self.uploaded = 0
        self.skipped = 0
        self.bytes = 0
        self.deferred = []
        self.failed = {}  # file name (or "(dump)", "(manifest)") -> error text
        self.remote = None  # error text when S3 itself failed
        self.refusal = None  # S3 says the destination can never work

    def fail(self, what, exc, bucket):
        """Record a failure; True when S3 itself failed (refused or unreachable), not a local file."""
        text = s3.describe_error(exc)
        self.failed[what] = text
        if s3.is_refusal(exc):
            self.refusal = self.refusal or "S3 refused %s: %s" % (bucket, text)
            return True
        if s3.is_remote_failure(exc):
            self.remote = self.remote or text
            return True
        return False


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
            try:
                left = queue.entries(self.logger)
            except OSError:
                left = {}
            status.record_pass(self.store, this_pass, left, self.logger)
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
                    self.logger.info("S3 still unreachable (%s); next try in %.0f s" % (s3.describe_error(exc), delay))
            else:
                return

    def _one_pass(self, queue, result, wait_for_all):
        adopt.run(self.config, self.store.fd, self.logger)  # dumps containers wrote, no hook enqueued
        queue.claim(self.logger)
        entries = queue.entries(self.logger)
        groups = schedule.group(entries)
        settings = self.config["uploader"]
        over_bytes = self.store.uids_over_byte_quota(settings["max_bytes_per_uid_per_hour"])
        ordered, result.held = schedule.order(groups.values(), settings["max_pending_dumps_per_uid"], over_bytes)
        pending = collections.deque(ordered)
        if not pending:
            return
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
        """Entries that arrived during the pass (see :func:`schedule.admit`)."""
        if not queue.has_incoming():
            return
        arrived = {}
        for name, queued in queue.claim(self.logger).items():
            key = schedule.key_of(queued)
            if key in started:
                self._carried = True  # that dump is being (or was) worked on in this pass: the next one re-checks
                continue
            entries[name] = queued
            arrived.setdefault(key, schedule.Group(*key)).add(name, queued)
        started.update(arrived)
        schedule.admit(arrived.values(), pending)

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
            outcome.failed["(dump)"] = s3.describe_error(exc)
            outcome.remote = outcome.failed["(dump)"] if s3.is_remote_failure(exc) else None
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

    def _process_dump(self, group, wait_for_all, pools):
        """Upload one dump dir. Returns an _Outcome, or None when it is local only."""
        check_uid(self.config["uploader"], group.uid)
        dump_fd, dump_info = open_dump(self.config["dump_roots"], group.dump_dir, group.uid)
        try:
            with self.store.lock(group.dump_dir, self.config["uploader"]["lock_wait_seconds"]):
                progress = DumpProgress(self.store, group.dump_dir)
                progress.set_owner(group.uid, self.dump_instance_id(group.instance_id))
                prefix = progress.primary_prefix(group.prefixes)
                target = None
                if prefix is not None:
                    try:
                        target = allowed_target(self.config["s3"], prefix)
                    except PolicyRefused as exc:
                        progress.refused(str(exc))
                        raise
                    progress.fold_prefixes(prefix, group.prefixes)
                if not progress.captured and self.config["capture"]["enabled"]:
                    self._capture(progress, dump_fd, dump_info)
                if target is None:
                    progress.local_only()
                    return None
                progress.use_prefix(prefix, *target)
                user = self.user_name(group.uid)
                upload = transfer.Target(*target, group.uid, user, progress.instance_id, group.dump_dir)
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
            selection = transfer.select(dump_fd, progress, int(settings["settle_seconds"] * 1e9), self.logger)
            total.skipped += selection.unchanged
            total.deferred = selection.deferred
            if selection.todo:
                self._send(dump_fd, selection.todo, progress, target, total, pools)
            if total.failed or not total.deferred or time.monotonic() >= deadline:
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
                total.fail("(manifest)", exc, target.bucket)
        return total

    def _send(self, dump_fd, names, progress, target, outcome, pools):
        """Send ``names`` through :mod:`transfer`, several files at once; results go to ``progress``."""
        files, parts = pools
        sender = transfer.Transfer(self.client(), self.config["s3"], self.logger, parts)
        own = progress.own_files()
        futures = {}
        for name in names:
            known, pending = progress.known(name), progress.pending_multipart(name)
            futures[name] = files.submit(sender.send, dump_fd, name, target, known, pending, progress, name in own)
        for name, future in futures.items():
            try:
                answer = future.result()
            except transfer.Skip as exc:
                progress.file_skipped(name, str(exc))
                self.logger.warning("%s/%s not uploaded: %s" % (keys.display(target.dump_dir), keys.display(name), exc))
                continue
            except Exception as exc:  # recorded per file; other files go on unless S3 itself failed
                if outcome.fail(name, exc, target.bucket):
                    # S3 refused, retries are spent or the error is permanent (credentials, access):
                    # the other files would only fail the same way, slowly
                    sender.abort_reason = sender.abort_reason or s3.describe_error(exc)
                continue
            progress.file_done(answer)
            if answer.status == transfer.SENT:
                outcome.uploaded += 1
                outcome.bytes += answer.info.st_size
            else:
                outcome.skipped += 1


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
