"""The ``neuron-dump`` hook: what the Neuron runtime runs (and waits for) on a failure.

``run()`` is the entry point used by the installed script: it arms a watchdog,
calls :func:`main` and always ends the process with status 0. :func:`main` does
the work and never raises, so tests can call it in-process.

Order of work, each step guarded on its own so one failure never skips the rest:

1. read the config (invalid -> log and use the built-in defaults);
2. open the dump dir safely, creating it 0700 (before the vendor runs, so the
   vendor finds a private directory and not one made with its umask); a dir in
   the spool or state dir, or reached through a planted link, is refused and the
   dump (vendor included) redirected below the first dump root;
3. for a ``--runtime-generated`` call: check the file (a regular file within
   hook.max_copy_bytes, never opened otherwise) and copy it into the dump dir,
   bounded, when it is elsewhere;
4. chain to the vendor capture with the same argv (pointed at the safe dir and at
   our copy of the runtime file), under a timeout; see :mod:`vendor` for why
   nothing it starts outlives the hook;
5. write our JSON record (temp file + rename, unique name);
6. enqueue the dump for the uploader (atomic rename into the spool);
7. make sure an uploader will run (systemd path unit, or a detached worker).
"""

import errno
import os
import stat  # already loaded by fsutil: no cost on the hook's path
import time

from . import config as config_mod
from . import flags as flags_mod
from . import fsutil, log, record, spool, vendor
from .hostinfo import instance_id as find_instance_id
from .hostinfo import safe_token, tool_versions

COPY_CHUNK = 1024 * 1024
# O_PATH: enough to fstat a directory and open its '..', even where it is search-only (1733),
# and to pin a file without opening it
_O_PATH = getattr(os, "O_PATH", 0)
_O_NOCTTY = getattr(os, "O_NOCTTY", 0)
_PARENT_FLAGS = (_O_PATH or os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC
_STDERR_LEVELS = {"errors": log.LOG_ERR, "all": log.LOG_DEBUG, "none": None}


def load_config(path):
    """(config, error message or None). Falls back to defaults; never raises."""
    try:
        return config_mod.read(path), None
    except config_mod.ConfigError as exc:
        return config_mod.defaults(), "config %s is invalid: %s: %s" % (path, exc.key, exc.rule)
    except Exception as exc:  # unexpected trouble reading the config must not stop the capture
        return config_mod.defaults(), "config %s unreadable: %s" % (path, exc)


def expand_template(template, flags):
    """Expand the runtime's ``%d %c %p %t %l %i %%`` variables (unknown ``%X`` -> ``%``) with
    the rules the modules check patterns with (patterns.py, shared with module_utils)."""
    from .patterns import expand

    values = {
        "d": flags.get("date-time") or time.strftime("%Y%m%d-%H%M%S"),
        "c": flags.get("cluster-id") or "none",
        "p": flags.get("pid") or str(os.getppid()),
        "t": flags.get("tid") or "none",
        "l": flags.get("log-id") or "none",
        "i": flags.get("instance-id") or "none",
    }
    # a value must stay one path component
    return expand(template, {key: value.replace("/", "_") for key, value in values.items()})


def open_dump_dir(path, config):
    """Open (creating) the dump dir without following planted symlinks.

    Returns (fd, root or None). Raises OSError/UnsafePathError with the reason.
    """
    hook = config["hook"]
    fsutil.split_components(path)  # '..', NUL, relative: unsafe (redirected), before any policy
    root = fsutil.find_root(path, config["dump_roots"])
    refuse_uploader_dirs(path, root, config)
    if root is None:
        if not hook["write_outside_roots"]:
            raise PolicyRefusal("outside the configured dump roots and hook.write_outside_roots is false")
        fd = fsutil.walk(path, create_mode=hook["dir_mode"])
    else:
        depth = len(fsutil.split_components(root))
        # the root itself may be missing (/tmp/neuron-core-dump after a reboot) and is made 1733;
        # its parents are the role's business and are never created here
        fd = fsutil.walk(
            path,
            create_mode=hook["dir_mode"],
            strict_from=depth,
            created_modes={depth - 1: hook["root_mode"]},
            create_from=depth - 1,
        )
    try:
        if root is None:
            # outside the roots only root-owned links were followed; one may still lead into
            # the spool (an admin's link): the opened directory is checked by identity as well
            _refuse_by_identity(fd, config)
        info = os.fstat(fd)
        if info.st_uid not in (os.geteuid(), 0):
            raise fsutil.UnsafePathError(errno.EPERM, "dump dir is owned by another user (uid %d)" % info.st_uid)
    except BaseException:
        os.close(fd)
        raise
    return fd, root


_UPLOADER_DIR_REFUSED = "inside the uploader's spool or state directory, where only root writes"


def refuse_uploader_dirs(path, root, config):
    """Never write below the spool, nor below the state dir except inside a dump root placed there.

    Whatever hook.write_outside_roots says: a record in ``incoming/`` would look like a
    spool entry, one in ``queue/`` or the state dir like the uploader's own files.
    (``..`` is refused by the walk itself and a relative path is already absolute here.)
    """
    state = config["state_dir"]
    root_inside_state = root is not None and fsutil.is_under(root, state) and not fsutil.is_under(state, root)
    if fsutil.is_under(path, config["spool_dir"]) or (fsutil.is_under(path, state) and not root_inside_state):
        raise fsutil.UnsafePathError(errno.EPERM, _UPLOADER_DIR_REFUSED, path[:200])


def _refuse_by_identity(fd, config):
    """Walk up from ``fd`` (by '..', which follows no link) looking for the spool or state dir."""
    protected = set()
    for path in (config["spool_dir"], config["state_dir"]):
        info = fsutil.quietly(os.stat, path)
        if info is not None:
            protected.add((info.st_dev, info.st_ino))
    if not protected:
        return
    current = os.dup(fd)
    try:
        for _level in range(256):
            info = os.fstat(current)
            if (info.st_dev, info.st_ino) in protected:
                raise fsutil.UnsafePathError(errno.EPERM, _UPLOADER_DIR_REFUSED)
            parent = os.open("..", _PARENT_FLAGS, dir_fd=current)
            parent_info = os.fstat(parent)
            os.close(current)
            current = parent
            if (parent_info.st_dev, parent_info.st_ino) == (info.st_dev, info.st_ino):
                return  # reached /
    finally:
        os.close(current)


class PolicyRefusal(Exception):
    """The config says not to write there (not an attack: the vendor still gets the original dir)."""


def redirect_dump_dir(path, config):
    """A fresh private dir below the first dump root, for when ``path`` is unsafe (planted link,
    another user's dir). The vendor capture is pointed there too, so it cannot follow the trap."""
    name = "%s-redirected-%s" % (safe_token(path.rstrip("/").rpartition("/")[2], 80), fsutil.unique_suffix())
    target = config["dump_roots"][0].rstrip("/") + "/" + name
    fd, root = open_dump_dir(target, config)
    return target, fd, root


def vendor_argv(argv, dump_dir):
    """``argv`` with every --local-output-dir value replaced by ``dump_dir`` (parsed like :mod:`flags`)."""
    return replace_flag(argv, "local-output-dir", dump_dir)


def replace_flag(argv, name, value):
    """``argv`` with every ``--name`` value replaced by ``value`` (added when missing)."""
    result = []
    found = False
    index = 0
    long_name = "--" + name
    while index < len(argv):
        token = argv[index]
        index += 1
        if token.startswith(long_name + "="):
            result.append(long_name + "=" + value)
            found = True
        elif token == long_name:
            result.extend([token, value])
            found = True
            if index < len(argv) and not flags_mod.looks_like_flag(argv[index]):
                index += 1  # skip the value we replace
        else:
            result.append(token)
    if not found:
        result.extend([long_name, value])
    return result


class RuntimeFile:
    """The ``--runtime-generated`` file, opened once: a regular file within hook.max_copy_bytes.

    Opened O_NOFOLLOW|O_NONBLOCK and checked with fstat, so ``/dev/zero``, a FIFO, a socket
    or a planted link is refused without blocking, and every later read is of that inode.
    Any refusal is in ``result["error"]`` and leaves ``fd`` None.
    """

    def __init__(self, source, hook):
        self.source = source
        self.result = {"source": source[: hook["max_value_chars"]]}
        self.fd = None
        self.name = None
        self.parent = None  # (st_dev, st_ino) of the directory holding it
        self.size = 0
        try:
            self._open(source, hook["max_copy_bytes"])
        except (OSError, ValueError) as exc:  # missing, not regular, a link, a NUL byte: refused with the reason
            self.result["error"] = str(exc)

    def _open(self, source, limit):
        parent, _unused, name = source.rpartition("/")
        if not name or not source.startswith("/"):
            self.result["error"] = "not an absolute file path"
            return
        parent_fd = fsutil.walk(parent or "/")
        try:
            parent_info = os.fstat(parent_fd)
            fd, info = _open_regular_without_touching(parent_fd, name)
        finally:
            os.close(parent_fd)
        self.result["size"] = info.st_size
        if info.st_size > limit:
            os.close(fd)
            self.result["error"] = "larger than hook.max_copy_bytes, not copied"
            return
        self.fd, self.name, self.size = fd, name, info.st_size
        self.parent = (parent_info.st_dev, parent_info.st_ino)

    def usable(self):
        return self.fd is not None

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _open_regular_without_touching(parent_fd, name):
    """Open ``name`` for reading only if it is a regular file, without ever opening anything else.

    Opening has side effects for some files: a FIFO's open releases a writer waiting in it, a
    device's open can arm a watchdog or rewind a tape. So the file is first pinned with
    O_PATH (no open of the file itself), checked with fstat, and only a regular file is then
    opened, through /proc/self/fd (the same inode, whatever happens to the name meanwhile).
    Without O_PATH or /proc: O_NOFOLLOW|O_NONBLOCK|O_NOCTTY and fstat (fsutil.open_regular).
    """
    if not _O_PATH:
        return fsutil.open_regular(parent_fd, name, os.O_RDONLY | _O_NOCTTY)
    pinned = os.open(name, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    try:
        info = os.fstat(pinned)
        if not stat.S_ISREG(info.st_mode):
            raise fsutil.UnsafePathError(errno.EINVAL, "not a regular file", name)
        try:
            fd = os.open("/proc/self/fd/%d" % pinned, os.O_RDONLY | os.O_NONBLOCK | _O_NOCTTY | os.O_CLOEXEC)
        except FileNotFoundError:  # no /proc here
            return fsutil.open_regular(parent_fd, name, os.O_RDONLY | _O_NOCTTY)
    finally:
        os.close(pinned)
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino) or not stat.S_ISREG(opened.st_mode):
        os.close(fd)
        raise fsutil.UnsafePathError(errno.EINVAL, "file changed while being opened", name)
    return fd, opened


def copy_runtime_generated(runtime, dump_fd, config):
    """Copy the runtime's own file into the dump dir unless it is already there.

    Returns the name the file has in the dump dir (the vendor is pointed at it), or None.
    At most the size seen at open is copied, so a file that keeps growing is bounded too.
    """
    hook = config["hook"]
    result = runtime.result
    dump_info = os.fstat(dump_fd)
    if runtime.parent == (dump_info.st_dev, dump_info.st_ino):
        result["in_dump_dir"] = True
        return runtime.name
    if not hook["copy_runtime_generated"]:
        result["copied"] = False
        return None
    name = runtime.name
    target = name if len(name) < 200 else name[:150]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        dst_fd = os.open(target, flags, hook["file_mode"], dir_fd=dump_fd)
    except FileExistsError:
        # The vendor capture of another rank usually collected the same file: keep one copy.
        if _same_file_content(runtime.fd, runtime.size, dump_fd, target):
            result["already_present"] = target
            return target
        target = "%s.%s" % (target, fsutil.unique_suffix())
        dst_fd = os.open(target, flags, hook["file_mode"], dir_fd=dump_fd)
    try:
        _copy_fd(runtime.fd, dst_fd, min(runtime.size, hook["max_copy_bytes"]))
    except BaseException:
        os.close(dst_fd)
        os.unlink(target, dir_fd=dump_fd)
        raise
    os.close(dst_fd)
    result["copied_as"] = target
    return target


def _same_file_content(src_fd, size, dir_fd, name):
    """Whether the regular file ``name`` in ``dir_fd`` holds exactly the bytes of ``src_fd``."""
    try:
        other_fd, other_info = fsutil.open_regular(dir_fd, name)
    except OSError:
        return False
    try:
        if other_info.st_size != size:
            return False
        offset = 0
        while offset < size:
            chunk = min(1 << 20, size - offset)
            if os.pread(src_fd, chunk, offset) != os.pread(other_fd, chunk, offset):
                return False
            offset += chunk
        return True
    finally:
        os.close(other_fd)


def _copy_fd(src_fd, dst_fd, size):
    """Copy exactly the first ``size`` bytes at most (never more, whatever the file does meanwhile)."""
    offset = 0
    try:
        while offset < size:
            sent = os.sendfile(dst_fd, src_fd, offset, min(COPY_CHUNK * 16, size - offset))
            if sent == 0:
                return
            offset += sent
        return
    except OSError:
        pass  # file systems without sendfile support: fall back to pread/write from where we are
    while offset < size:
        chunk = os.pread(src_fd, min(COPY_CHUNK, size - offset), offset)
        if not chunk:
            return
        offset += len(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst_fd, view) :]


def _problem(problems, step, exc):
    text = "%s: %s" % (step, exc)
    problems.append(text)
    log.error(text)


def main(argv, config_path=config_mod.DEFAULT_PATH, watchdog=None):
    """Do the hook's work for one call. Never raises; returns 0."""
    try:
        _main(list(argv), config_path, watchdog)
    except KeyboardInterrupt:
        pass  # the job was interrupted as a whole: leave quietly, status 0
    except Exception as exc:  # the runtime must never see a failure from the hook
        log.error("hook failed: %r" % (exc,))  # log.error never raises
    return 0


def _main(argv, config_path, watchdog):
    config, config_problem = load_config(config_path)
    hook = config["hook"]
    log.setup(stderr_level=_STDERR_LEVELS[hook["log_stderr"]], log_file=config["log_file"])
    if watchdog is not None:
        watchdog(hook["vendor_timeout_seconds"] + hook["budget_seconds"])
    problems = []
    if config_problem:
        _problem(problems, "config", config_problem + "; using built-in defaults")
    flags = flags_mod.parse(argv)
    # DMI where there is one (EC2), else the id the runtime passed: the record's name, the
    # spool entry and so the uploader's manifest all carry the same id.
    iid, iid_source = find_instance_id(hook["instance_id_file"], flags.get("instance-id"), config["state_dir"])
    dump_dir = flags.get("local-output-dir") or expand_template(hook["fallback_dump_dir"], flags)
    if not dump_dir.startswith("/"):
        # a relative NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY means "below the workload's cwd" (ours too);
        # with the cwd deleted the relative path stays, is refused below and the dump redirected
        cwd = fsutil.quietly(os.getcwd)
        if cwd:
            dump_dir = os.path.join(cwd, dump_dir)

    dump_fd = None
    root = None
    run_argv = argv
    try:
        dump_fd, root = open_dump_dir(dump_dir, config)
    except fsutil.UnsafePathError as exc:
        # a planted symlink or a foreign dir: neither we nor the vendor capture may write there
        _problem(problems, "dump dir %r refused" % dump_dir[:300], exc)
        try:
            dump_dir, dump_fd, root = redirect_dump_dir(dump_dir, config)
            run_argv = vendor_argv(argv, dump_dir)
            log.warning("dump redirected to %s" % dump_dir)
        except Exception as redirect_exc:  # no safe place at all: skip the vendor rather than leak
            _problem(problems, "redirect", redirect_exc)
            run_argv = None
    except Exception as exc:  # a refused or failed dir still lets the vendor capture run
        _problem(problems, "dump dir %r" % dump_dir[:300], exc)

    runtime = None
    runtime_source = flags.get("runtime-generated")
    try:
        extra = {"dump_dir": dump_dir, "dump_root": root}
        if runtime_source:
            runtime = RuntimeFile(runtime_source, hook)
            extra["runtime_generated"] = runtime.result
            run_argv = _runtime_file_for_vendor(runtime, dump_fd, dump_dir, config, run_argv, problems)
        try:
            if run_argv is None:
                reason = "no safe dump dir" if runtime is None or runtime.usable() else "runtime-generated file refused"
                vendor_result = {"path": hook["vendor_path"], "ran": False, "error": reason}
            else:
                vendor_result = vendor.run(hook["vendor_path"], run_argv, hook["vendor_timeout_seconds"])
        except Exception as exc:  # a broken vendor file must not stop our record
            vendor_result = {"path": hook["vendor_path"], "error": str(exc)}
        if vendor_result.get("timed_out"):
            _problem(problems, "vendor", "%s killed after %ss" % (hook["vendor_path"], hook["vendor_timeout_seconds"]))
        if dump_fd is None:
            return
        extra["vendor"] = vendor_result
        record_name = _write_record(flags, argv, config, dump_fd, extra, problems, iid, iid_source)
    finally:
        if runtime is not None:
            runtime.close()
        if dump_fd is not None:
            os.close(dump_fd)

    if root is None:
        return  # outside the dump roots: the uploader would refuse it, so it stays local
    try:
        entry = spool.make_entry(
            dump_dir, flags.get("s3-output-prefix"), record.kind_of(flags), record_name, flags.get("pid"), iid
        )
        spool.enqueue(config["spool_dir"], entry, hook["file_mode"])
    except Exception as exc:  # the dump is on disk; gc/status still see it
        _problem(problems, "enqueue", exc)
        return
    _trigger(config, config_path, problems)


def _runtime_file_for_vendor(runtime, dump_fd, dump_dir, config, run_argv, problems):
    """The vendor's argv for a ``--runtime-generated`` call, or None to skip the vendor.

    The vendor copies that file with no bound of its own (``cp /dev/zero`` fills the disk
    until the vendor timeout), so it never sees the original: only a regular file within
    hook.max_copy_bytes, and when we copied it, our bounded copy in the dump dir.
    """
    if not runtime.usable():
        _problem(problems, "runtime-generated %r" % runtime.source[:300], runtime.result["error"])
        return None
    if dump_fd is None or run_argv is None:
        return run_argv
    try:
        name = copy_runtime_generated(runtime, dump_fd, config)
    except Exception as exc:  # the record still gets written, with the reason
        _problem(problems, "runtime-generated %r" % runtime.source[:300], exc)
        runtime.result["error"] = str(exc)
        return None
    if name is None:
        return run_argv
    return replace_flag(run_argv, "runtime-generated", dump_dir.rstrip("/") + "/" + name)


def _write_record(flags, argv, config, dump_fd, extra, problems, iid, source):
    hook = config["hook"]
    try:
        extra["problems"] = list(problems)
        data = record.build(
            flags, argv, iid, source, tool_versions(hook["versions_file"]), hook["max_value_chars"], extra
        )
        from . import fastjson

        name = record.file_name(iid, flags, fsutil.unique_suffix())
        fsutil.write_new_file(dump_fd, name, fastjson.dumps(data, indent=1).encode("ascii"), hook["file_mode"])
        return name
    except Exception as exc:  # e.g. ENOSPC: logged, and the dump is still enqueued
        _problem(problems, "record", exc)
        return None


def _trigger(config, config_path, problems):
    from . import trigger

    try:
        if trigger.mode_for(config) != "spawn":
            return
        if spool.worker_running(config["spool_dir"]):
            return
        trigger.spawn_worker(config["uploader"]["cli_path"], config_path)
    except Exception as exc:  # the entry is queued; the timer will pick it up
        _problem(problems, "spawn uploader", exc)


def _ensure_std_fds():
    """Put /dev/null on fds 0-2 if the runtime closed them, so no file of ours becomes 'stderr'."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open("/dev/null", os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def _install_watchdog():
    """SIGALRM ends the process with status 0 (killing the vendor group) when the budget is spent.

    Signal state survives execve: a runtime thread may have SIGALRM blocked, or SIGCHLD
    ignored (which would make our children vanish before waitpid). Both are reset here.
    """
    try:
        import _signal as signals  # the public module imports enum: ~8 ms we do not want to spend
    except ImportError:  # pragma: no cover - other interpreters
        import signal as signals

    signals.signal(signals.SIGCHLD, signals.SIG_DFL)
    signals.pthread_sigmask(signals.SIG_UNBLOCK, [signals.SIGALRM, signals.SIGCHLD])

    def on_alarm(_signum, _frame):
        vendor.kill_running()
        try:
            log.error("hook time budget exceeded; exiting with status 0")
        finally:
            os._exit(0)

    signals.signal(signals.SIGALRM, on_alarm)

    def arm(seconds):
        signals.setitimer(signals.ITIMER_REAL, max(0.001, float(seconds)))

    return arm


def run(argv, config_path=config_mod.DEFAULT_PATH):
    """Entry point of the installed hook script: do the work, then exit 0, always."""
    try:
        _ensure_std_fds()
        arm = _install_watchdog()
        defaults = config_mod.DEFAULTS["hook"]
        arm(defaults["vendor_timeout_seconds"] + defaults["budget_seconds"])  # until the config is read
        main(argv, config_path, watchdog=arm)
    finally:
        # status 0 whatever happened; _exit also skips interpreter teardown, which the runtime would wait for
        os._exit(0)
