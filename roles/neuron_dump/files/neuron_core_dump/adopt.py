"""Adoption: dump directories that containers wrote into the container dump area.

A container's own (vendor) ``neuron-dump`` writes into ``<area>/shared`` (or a
per-container slot ``<area>/by-id/<64 hex>``, see :mod:`oci_hook`); no hook of ours
enqueues anything. Each upload run calls :func:`run` first. It is root's, and every
byte it reads was written by a container as any uid: hostile input.

A candidate is a directory named ``dt-<D>-cid-<C>`` (:mod:`dump_name`) directly in a
slot, on the slot's file system. It goes through three phases, one step per run
(the upload timer runs every minute), with its state in ``state_dir/containers.json``:

``watch``    walked with lstat only (depth and entry caps) into a snapshot of
             (name, type, size, inode, ctime) below it; ready once the snapshot has
             not changed for ``quiet_seconds`` and the newest ctime is that old.
             ctime, not mtime: a container can set mtime with ``utimensat``, not ctime.
``claimed``  renamed into ``<area>/.adopting`` (root 0700, outside every container's
             mount); a writer that still holds an fd below it can go on writing, so the
             same quiet rule applies once more.
``copied``   its top-level regular files are copied (never linked or moved) into a new
             root-only directory below the first dump root, an ``origin`` file is added,
             a spool entry is queued as root, and the claimed directory is deleted.

A candidate that never quiesces is taken anyway after ``max_wait_seconds`` (marked
``forced``). Files are opened with ``O_NOFOLLOW|O_NONBLOCK`` and must be regular with one
link; symlinks, FIFOs, sockets, devices, hard links, subdirectories and over-long names
are never opened and are listed in the origin file under ``skipped``. At most
``max_dump_bytes`` are copied per dump, so an endless writer is bounded too.

Fairness: candidates are grouped by owner uid (the host uid the container's writer
maps to); at most ``max_candidates_per_owner`` of an owner are watched and at most
``max_adopt_per_run`` are adopted per run, round-robin across owners, so one
container's flood cannot delay another's dump. Adopted dumps are queued by root;
the uploader's own per-uid limits then apply.

S3: ``containers.s3_prefix`` with ``%d``/``%c`` from the directory name, ``%i`` the
host's instance id and ``%p %t %l`` as ``container``, then
``/containers/<attribution id>``. A container never chooses a key; the uploader's
conditional writes and collision keys keep two dumps from overwriting each other.
Without a prefix adopted dumps stay local (listed by ``list``, kept by retention).
"""

import errno
import os
import stat
import time

from . import dump_name, fsutil, hostinfo, keys, origin, spool

SHARED = "shared"
BY_ID = "by-id"
ADOPTING = ".adopting"
STATE_FILE = "containers.json"
ORIGIN_FILE = "ncd-container-origin.json"
MAX_STATE_BYTES = 8 * 1024 * 1024
WATCH, CLAIMED = "watch", "claimed"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def enabled(config):
    settings = config["containers"]
    if settings["enabled"] is not None:
        return settings["enabled"]
    try:
        return stat.S_ISDIR(os.lstat(os.path.join(settings["area"], SHARED)).st_mode)
    except OSError:
        return False


class Summary:
    def __init__(self):
        self.candidates = 0
        self.quiet_waiting = 0
        self.claimed = 0
        self.adopted = 0
        self.foreign_entries = 0
        self.not_watched = 0  # over the per-owner watch cap (a flood): looked at in a later run
        self.errors = []

    def as_dict(self):
        return {
            "candidates": self.candidates,
            "quiet_waiting": self.quiet_waiting,
            "claimed": self.claimed,
            "adopted": self.adopted,
            "foreign_entries": self.foreign_entries,
            "not_watched": self.not_watched,
            "errors": self.errors[-5:],
        }


def run(config, store_fd, logger, now_ns=None):
    """One adoption step over the area. Returns a Summary; never raises for a container's doing."""
    summary = Summary()
    if not enabled(config):
        return summary
    now_ns = now_ns or time.time_ns()
    try:
        area = _Area(config["containers"]["area"])
    except OSError as exc:
        summary.errors.append("container area: %s" % _text(exc))
        logger.warning("container dump area not usable: %s" % _text(exc))
        return summary
    try:
        data = _load_state(store_fd)
        _Run(config, area, data, summary, logger, now_ns).step()
        data["summary"] = dict(summary.as_dict(), at_ns=now_ns)
        data["adopted_total"] = int(data.get("adopted_total") or 0) + summary.adopted
        fsutil.replace_file(store_fd, STATE_FILE, fsutil.dump_json(data, indent=1), 0o600)
    except Exception as exc:  # adoption must never keep the host's own dumps from uploading
        summary.errors.append(_text(exc))
        logger.error("container adoption failed: %s" % _text(exc))
    finally:
        area.close()
    return summary


def read_status(state_dir):
    """The last run's counts (root; {} when never run or unreadable)."""
    try:
        fd = fsutil.walk(state_dir)
    except OSError:
        return {}
    try:
        data = _load_state(fd)
    finally:
        os.close(fd)
    result = dict(data.get("summary") or {})
    result["adopted_total"] = int(data.get("adopted_total") or 0)
    return result


def _load_state(fd):
    try:
        data = fsutil.load_json(fd, STATE_FILE, MAX_STATE_BYTES)
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("candidates"), dict):
        data = {"candidates": {}, "adopted_total": 0}
    return data


class _Area:
    """The area and its slots, opened once per run without following links."""

    def __init__(self, path):
        self.path = path
        self.fd = fsutil.walk(path)
        try:
            _check_dir(self.fd, path, 0o022)
            self.adopting_fd = fsutil.walk_below(self.fd, [ADOPTING], create_mode=0o700)
            _check_dir(self.adopting_fd, ADOPTING, 0o077)
        except BaseException:
            os.close(self.fd)
            raise

    def slots(self, logger):
        """[(slot kind, container id or None, fd)]: the caller closes the fds."""
        found = []
        try:
            shared_fd = os.open(SHARED, _DIR, dir_fd=self.fd)
            try:
                _check_dir(shared_fd, SHARED, 0o022, sticky_ok=True)
                found.append((SHARED, None, shared_fd))
            except OSError as exc:
                os.close(shared_fd)
                logger.warning("container area %s/%s refused: %s" % (self.path, SHARED, _text(exc)))
        except OSError:
            pass
        try:
            by_id_fd = os.open(BY_ID, _DIR, dir_fd=self.fd)
        except OSError:
            return found
        try:
            _check_dir(by_id_fd, BY_ID, 0o022)
            for name in sorted(os.listdir(by_id_fd)):
                if not origin.valid_container_id(name):
                    continue
                try:
                    fd = os.open(name, _DIR, dir_fd=by_id_fd)
                except OSError:
                    continue
                found.append((BY_ID, name, fd))
        except OSError as exc:
            logger.warning("container area %s/%s refused: %s" % (self.path, BY_ID, _text(exc)))
        finally:
            os.close(by_id_fd)
        return found

    def close(self):
        fsutil.quietly(os.close, self.adopting_fd)
        fsutil.quietly(os.close, self.fd)


def _remove_if_finished(by_id_fd, name, area):
    """Remove an empty per-container slot (and the hook's record) once its container is gone.

    Gone: the bundle directory the hook recorded no longer exists (the runtime removed the
    container). Without a record of the hook's, the slot is kept: nothing says it is finished.
    Only called for slots with nothing watched or claimed: the record is the adoption's source.
    """
    try:
        fd = os.open(name, _DIR, dir_fd=by_id_fd)
    except OSError:
        return False
    try:
        if os.listdir(fd):
            return False
    finally:
        os.close(fd)
    bundle = origin.hook_record_bundle(area, name)
    if not bundle:
        return False
    try:
        os.lstat(bundle)
        return False
    except FileNotFoundError:
        pass
    except OSError:
        return False
    try:
        os.rmdir(name, dir_fd=by_id_fd)
        os.unlink(name + ".json", dir_fd=by_id_fd)
    except OSError:
        return False
    return True


def _check_dir(fd, what, forbidden, sticky_ok=False):
    info = os.fstat(fd)
    if info.st_uid != 0 and info.st_uid != os.geteuid():
        raise fsutil.UnsafePathError(errno.EPERM, "%s is owned by uid %d, not root" % (what, info.st_uid))
    bad = info.st_mode & forbidden
    if sticky_ok and info.st_mode & stat.S_ISVTX:
        bad &= ~0o033  # 1733: create-only for others, as core_dump makes it
    if bad:
        raise fsutil.UnsafePathError(errno.EPERM, "%s has mode %04o" % (what, stat.S_IMODE(info.st_mode)))


class _Run:
    def __init__(self, config, area, data, summary, logger, now_ns):
        self.config = config
        self.settings = config["containers"]
        self.area = area
        self.data = data
        self.summary = summary
        self.logger = logger
        self.now_ns = now_ns
        self.quiet_ns = int(self.settings["quiet_seconds"] * 1e9)
        self.max_wait_ns = int(self.settings["max_wait_seconds"] * 1e9)

    def step(self):
        candidates = self.data["candidates"]
        seen = set()
        ready = []
        for kind, container_id, slot_fd in self.area.slots(self.logger):
            try:
                for key, name, info in self._candidates(kind, container_id, slot_fd):
                    seen.add(key)
                    entry = candidates.setdefault(
                        key,
                        {
                            "phase": WATCH,
                            "slot": kind,
                            "container_id": container_id,
                            "name": name,
                            "owner_uid": info.st_uid,
                            "owner_gid": info.st_gid,
                            "ino": info.st_ino,
                            "first_seen_ns": self.now_ns,
                        },
                    )
                    if self._quiet(entry, slot_fd, name):
                        ready.append((key, entry, slot_fd))
                    else:
                        self.summary.quiet_waiting += 1
                self._claim_fairly(ready)
                ready = []
            finally:
                os.close(slot_fd)
        for key in [k for k, e in candidates.items() if e["phase"] == WATCH and k not in seen]:
            del candidates[key]  # gone (deleted by its container, or renamed): nothing to adopt
        self._finish_claimed()
        self._remove_finished_slots()

    def _remove_finished_slots(self):
        busy = {e.get("container_id") for e in self.data["candidates"].values()}
        try:
            by_id_fd = os.open(BY_ID, _DIR, dir_fd=self.area.fd)
        except OSError:
            return
        try:
            for name in os.listdir(by_id_fd):
                if origin.valid_container_id(name) and name not in busy:
                    _remove_if_finished(by_id_fd, name, self.area.path)
        finally:
            os.close(by_id_fd)

    def _candidates(self, kind, container_id, slot_fd):
        """(state key, name, lstat) of the candidates this run watches, per-owner capped, oldest first."""
        slot_dev = os.fstat(slot_fd).st_dev
        by_owner = {}
        scanned = 0
        with os.scandir(slot_fd) as entries:
            for item in entries:
                scanned += 1
                if scanned > self.settings["max_entries"] * 10:
                    break  # a slot flooded with names: the rest is looked at once these are gone
                name = item.name
                try:
                    info = os.lstat(name, dir_fd=slot_fd)
                except OSError:
                    continue
                if (
                    not dump_name.parse(name)
                    or not stat.S_ISDIR(info.st_mode)
                    or info.st_dev != slot_dev
                    or len(os.fsencode(name)) > self.settings["max_name_bytes"]
                ):
                    self.summary.foreign_entries += 1
                    continue
                by_owner.setdefault(info.st_uid, []).append((info.st_ctime_ns, name, info))
        cap = self.settings["max_candidates_per_owner"]
        for _uid, items in sorted(by_owner.items()):
            items.sort()
            self.summary.not_watched += max(0, len(items) - cap)
            for _ctime, name, info in items[:cap]:
                self.summary.candidates += 1
                yield "%s/%s/%s/%d" % (kind, container_id or "", keys.display(name), info.st_ino), name, info

    def _quiet(self, entry, parent_fd, name):
        """Whether ``name`` (below ``parent_fd``) has had the same snapshot for quiet_seconds."""
        snapshot = _snapshot(parent_fd, name, self.settings["max_depth"], self.settings["max_entries"])
        if snapshot is None:
            return None  # gone
        digest, newest_ctime, truncated = snapshot
        if entry.get("digest") != digest:
            entry["digest"] = digest
            entry["stable_since_ns"] = self.now_ns
        entry["truncated"] = truncated
        quiet = self.now_ns - entry["stable_since_ns"] >= self.quiet_ns and self.now_ns - newest_ctime >= self.quiet_ns
        if not quiet and self.now_ns - entry["first_seen_ns"] >= self.max_wait_ns:
            entry["forced"] = "not quiet after %ss (containers.max_wait_seconds)" % self.settings["max_wait_seconds"]
            return True
        return quiet

    def _claim_fairly(self, ready):
        """Rename ready candidates into .adopting, round-robin across owners, within the per-run cap."""
        lanes = {}
        for item in sorted(ready, key=lambda r: r[1]["first_seen_ns"]):
            lanes.setdefault(item[1]["owner_uid"], []).append(item)
        order = []
        for index in range(max((len(lane) for lane in lanes.values()), default=0)):
            order.extend(lane[index] for _uid, lane in sorted(lanes.items()) if index < len(lane))
        budget = self.settings["max_adopt_per_run"] - self.summary.claimed
        for key, entry, slot_fd in order:
            if budget <= 0:
                self.summary.quiet_waiting += 1
                continue
            claimed = "%s-%s-%s" % (entry["slot"], (entry["container_id"] or "")[:12], fsutil.unique_suffix())
            try:
                os.rename(entry["name"], claimed, src_dir_fd=slot_fd, dst_dir_fd=self.area.adopting_fd)
            except OSError as exc:
                self.summary.errors.append("claim %s: %s" % (keys.display(entry["name"]), _text(exc)))
                continue
            budget -= 1
            self.summary.claimed += 1
            entry.update(phase=CLAIMED, claimed_name=claimed, claimed_ns=self.now_ns)
            entry["stable_since_ns"] = self.now_ns  # the post-claim quiet period starts now
            self.data["candidates"]["claimed/" + claimed] = self.data["candidates"].pop(key)
            self.logger.info(
                "container dump %s (owner uid %d) claimed for adoption"
                % (keys.display(entry["name"]), entry["owner_uid"])
            )

    def _finish_claimed(self):
        candidates = self.data["candidates"]
        for key in [k for k, e in candidates.items() if e["phase"] == CLAIMED]:
            entry = candidates[key]
            quiet = self._quiet(entry, self.area.adopting_fd, entry["claimed_name"])
            if quiet is None:  # removed by hand (only root reaches .adopting)
                del candidates[key]
                continue
            if not quiet:
                self.summary.quiet_waiting += 1
                continue
            try:
                self._adopt(entry)
            except Exception as exc:  # left claimed (root-only): retried next run, reported meanwhile
                self.summary.errors.append("adopt %s: %s" % (keys.display(entry["name"]), _text(exc)))
                self.logger.error("cannot adopt container dump %s: %s" % (keys.display(entry["name"]), _text(exc)))
                continue
            del candidates[key]
            self.summary.adopted += 1

    def _adopt(self, entry):
        src_fd = os.open(entry["claimed_name"], _DIR, dir_fd=self.area.adopting_fd)
        try:
            root = self.config["dump_roots"][0]
            root_fd = fsutil.walk(root)
            try:
                dest_name, dest_fd = _new_dir(root_fd, entry)
            finally:
                os.close(root_fd)
            try:
                copied, skipped = _copy_top_level(src_fd, dest_fd, self.settings)
                record = origin.describe(entry, self.config["containers"]["area"], copied, skipped, self.now_ns)
                fsutil.write_new_file(dest_fd, ORIGIN_FILE, fsutil.dump_json(record, indent=1), 0o600)
            finally:
                os.close(dest_fd)
        finally:
            os.close(src_fd)
        dump_dir = os.path.join(root, dest_name)
        prefix = self._s3_prefix(entry, record)
        origin.remember(self.config["state_dir"], dump_dir, record)
        spool.enqueue(
            self.config["spool_dir"],
            spool.make_entry(dump_dir, prefix, "container", ORIGIN_FILE, None, hostinfo_instance_id(self.config)),
        )
        try:
            fsutil.remove_tree(self.area.adopting_fd, entry["claimed_name"], depth=self.settings["max_depth"] + 2)
        except OSError as exc:  # root-only leftovers: reported, harmless
            self.summary.errors.append("remove claimed %s: %s" % (entry["claimed_name"], _text(exc)))
        self.logger.info(
            "container dump %s adopted as %s (%d file(s), %s)"
            % (keys.display(entry["name"]), dump_dir, len(copied), record["origin"]["attribution"])
        )

    def _s3_prefix(self, entry, record):
        template = self.settings["s3_prefix"]
        if not template:
            return None
        parsed = dump_name.parse(entry["name"])
        values = {
            "date-time": parsed["d"],
            "cluster-id": parsed["c"],
            "pid": "container",
            "tid": "container",
            "log-id": "container",
            "instance-id": hostinfo_instance_id(self.config) or "none",
        }
        from .hook import expand_template

        return expand_template(template, values).rstrip("/") + "/containers/" + record["origin"]["attribution_id"]


def hostinfo_instance_id(config):
    return hostinfo.read_instance_id_file(config["hook"]["instance_id_file"])


def _new_dir(root_fd, entry):
    """A new root-only directory below the dump root, named after the dump (never an existing one)."""
    base = "%s-container-%s" % (entry["name"], (entry.get("container_id") or "shared")[:12])
    for _attempt in range(8):
        name = "%s-%s" % (base, fsutil.unique_suffix()[-8:])
        try:
            os.mkdir(name, 0o700, dir_fd=root_fd)
        except FileExistsError:
            continue  # someone (a host user: the root is 1733) took the name: pick another
        fd = os.open(name, _DIR, dir_fd=root_fd)
        info = os.fstat(fd)
        if info.st_uid != os.geteuid():
            os.close(fd)
            raise fsutil.UnsafePathError(errno.EPERM, "new dump dir %s not ours" % name)
        os.fchmod(fd, 0o700)
        return name, fd
    raise fsutil.UnsafePathError(errno.EEXIST, "no free name for %s" % base)


def _snapshot(parent_fd, name, max_depth, max_entries):
    """(sha256 of the entries' identities, newest ctime, truncated) of ``name``, or None when gone.

    lstat only, through directory fds; the top directory's own times are left out (the
    claim's rename changes its ctime).
    """
    import hashlib  # not at the top: ``status`` imports this module

    try:
        top = os.open(name, _DIR, dir_fd=parent_fd)
    except OSError:
        return None
    digest = hashlib.sha256()
    newest = 0
    count = 0
    truncated = False
    stack = [(top, b"", 0)]
    try:
        while stack:
            fd, relative, depth = stack.pop()
            try:
                names = sorted(os.listdir(fd))
            except OSError:
                names = []
            for child in names:
                count += 1
                if count > max_entries:
                    truncated = True
                    break
                try:
                    info = os.lstat(child, dir_fd=fd)
                except OSError:
                    continue
                path = relative + b"/" + os.fsencode(child)
                digest.update(
                    b"%s\0%o\0%d\0%d\0%d\n" % (path, info.st_mode, info.st_size, info.st_ino, info.st_ctime_ns)
                )
                newest = max(newest, info.st_ctime_ns)
                if stat.S_ISDIR(info.st_mode):
                    if depth + 1 >= max_depth:
                        truncated = True
                        continue
                    try:
                        stack.append((os.open(child, _DIR, dir_fd=fd), path, depth + 1))
                    except OSError:
                        continue
            if fd != top:
                os.close(fd)
            if truncated and count > max_entries:
                break
    finally:
        for fd, _rel, _depth in stack:
            fsutil.quietly(os.close, fd)
        os.close(top)
    return digest.hexdigest(), newest, truncated


def _copy_top_level(src_fd, dest_fd, settings):
    """Copy the regular single-link files directly in ``src_fd``; returns (copied, skipped) lists."""
    copied, skipped = [], []
    budget = settings["max_dump_bytes"]
    for name in sorted(os.listdir(src_fd)):
        described = keys.describe(name)
        try:
            info = os.lstat(name, dir_fd=src_fd)
        except OSError:
            continue
        reason = _skip_reason(name, info, settings)
        if reason:
            skipped.append(dict(described, reason=reason))
            continue
        try:
            fd = os.open(name, _FILE, dir_fd=src_fd)
        except OSError as exc:
            skipped.append(dict(described, reason="cannot open: %s" % _text(exc)))
            continue
        try:
            before = os.fstat(fd)
            reason = _skip_reason(name, before, settings)
            if reason:  # swapped between lstat and open
                skipped.append(dict(described, reason=reason))
                continue
            item = dict(described)
            limit = min(before.st_size, max(budget, 0))
            if limit < before.st_size:
                item["truncated_to"] = limit
            sha, written = _copy_file(fd, dest_fd, name, limit)
            budget -= written
            after = os.fstat(fd)
            item.update(size=written, sha256=sha, owner_uid=before.st_uid)
            if (after.st_size, after.st_ctime_ns) != (before.st_size, before.st_ctime_ns):
                item["changed_during_copy"] = True
            copied.append(item)
        finally:
            os.close(fd)
    return copied, skipped


def _skip_reason(name, info, settings):
    if len(os.fsencode(name)) > settings["max_name_bytes"]:
        return "name longer than %d bytes" % settings["max_name_bytes"]
    if name == ORIGIN_FILE or name.endswith("-manifest.json"):
        return "reserved name: only the host writes it"
    if name.startswith("."):
        return "hidden name (a writer's temp file)"
    if stat.S_ISLNK(info.st_mode):
        return "symlink: not followed"
    if stat.S_ISDIR(info.st_mode):
        return "subdirectory: not adopted (dumps are flat)"
    if stat.S_ISFIFO(info.st_mode):
        return "FIFO: never opened"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_nlink != 1:
        return "%d hard links: may be another dump's file" % info.st_nlink
    return None


def _copy_file(src, dest_fd, name, limit):
    """Copy at most ``limit`` bytes of ``src`` into a new file ``name``; (sha256 hex, bytes)."""
    import hashlib

    digest = hashlib.sha256()
    tmp = fsutil.TMP_PREFIX + fsutil.unique_suffix()
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dest_fd)
    written = 0
    try:
        try:
            while written < limit:
                chunk = os.read(src, min(1024 * 1024, limit - written))
                if not chunk:
                    break
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
                written += len(chunk)
        finally:
            os.close(out)
        os.rename(tmp, name, src_dir_fd=dest_fd, dst_dir_fd=dest_fd)
    except BaseException:
        fsutil.quietly(os.unlink, tmp, dir_fd=dest_fd)
        raise
    return digest.hexdigest(), written


def _text(exc):
    return keys.display(getattr(exc, "strerror", None) or str(exc))
