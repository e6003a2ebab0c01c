"""File-system helpers that never follow a symlink planted by an unprivileged user.

Dump directories live in places other users can write to (``/tmp``, a 1733 dump
root). Path strings are therefore never handed to the kernel whole. A path is
walked one component at a time with directory file descriptors:
``os.open(name, O_DIRECTORY | O_NOFOLLOW, dir_fd=parent)``, and ``mkdir(dir_fd=)``
for missing components.

Symlinks met on the way are handled by one rule, the same idea as the kernel's
``protected_symlinks``: a symlink owned by root (only root can create one) is
trusted and resolved, again component by component; any other symlink ends the
walk with :class:`UnsafePathError`. Below a dump root (``strict_from``) no symlink
is followed at all.
"""

import errno
import os
import stat
import time

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_O_PATH = getattr(os, "O_PATH", 0)
_MAX_LINKS = 40
TMP_PREFIX = ".ncd-tmp-"


class UnsafePathError(OSError):
    """A path that cannot be used safely (symlink, '..', wrong owner, not a directory)."""


def quietly(func, *args, **kwargs):
    """Call ``func`` and ignore OSError: for clean-up steps whose failure changes nothing.

    (A function rather than contextlib.suppress: contextlib costs import time on the hook's path.)
    """
    try:
        return func(*args, **kwargs)
    except OSError:
        return None


def unique_suffix():
    """Nanosecond time plus 32 random bits: unique across processes without coordination."""
    return "%d-%s" % (time.time_ns(), os.urandom(4).hex())


def split_components(path):
    """Components of an absolute path; '.' and empty parts dropped, '..' refused."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise UnsafePathError(errno.EINVAL, "not an absolute path", str(path)[:200])
    if "\0" in path:
        raise UnsafePathError(errno.EINVAL, "NUL byte in path")
    parts = [p for p in path.split("/") if p and p != "."]
    if ".." in parts:
        raise UnsafePathError(errno.EINVAL, "'..' in path", path[:200])
    return parts


def is_under(path, root):
    """Whether normalised ``path`` equals ``root`` or lies below it (string-wise, no I/O)."""
    try:
        path_parts = split_components(path)
        root_parts = split_components(root)
    except UnsafePathError:
        return False
    return path_parts[: len(root_parts)] == root_parts


def find_root(path, roots):
    """The configured root containing ``path`` (the longest match), or None."""
    best = None
    for root in roots:
        if is_under(path, root) and (best is None or len(root) > len(best)):
            best = root
    return best


def _mkdir_at(parent_fd, name, mode):
    try:
        os.mkdir(name, mode, dir_fd=parent_fd)
    except FileExistsError:
        return False
    return True


def walk(path, create_mode=None, strict_from=None, created_modes=None, create_from=0):
    """Open the directory ``path`` safely; return an O_DIRECTORY fd (caller closes it).

    ``create_mode``: create missing components with this mode (set exactly with
    fchmod, so the umask neither weakens nor strengthens it). ``created_modes``
    optionally maps a component index to another mode (the dump root gets 1733).
    ``strict_from``: components at this index and deeper must not be symlinks at all.
    ``create_from``: only components at this index and deeper may be created.
    """
    parts = split_components(path)
    budget = [_MAX_LINKS]
    fd = os.open("/", _DIR_FLAGS)
    try:
        for index, name in enumerate(parts):
            mode = create_mode if index >= create_from else None
            if mode is not None and created_modes and index in created_modes:
                mode = created_modes[index]
            strict = strict_from is not None and index >= strict_from
            child = _step(fd, name, mode, strict, budget)
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def _open_dir_at(fd, name):
    """Open a directory without following a symlink.

    Directories such as a 1733 dump root or the spool's ``incoming/`` are
    search-only for users: O_RDONLY fails there, so fall back to O_PATH, which
    is enough to stat the directory and to create files and dirs relative to it.
    """
    try:
        return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
    except PermissionError:
        if not _O_PATH:
            raise
        return os.open(name, _O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)


def _open_or_create_dir_at(fd, name, create_mode):
    """Open directory ``name`` below ``fd`` without following a symlink; create it (with
    exactly ``create_mode``, whatever the umask) when missing and ``create_mode`` is set."""
    try:
        return _open_dir_at(fd, name)
    except FileNotFoundError:
        if create_mode is None:
            raise
        created = _mkdir_at(fd, name, create_mode & 0o777)
        child = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
        if created:
            os.fchmod(child, create_mode)
        return child


def _step(fd, name, create_mode, strict, budget):
    """Open one component below ``fd``; create it or resolve a trusted symlink as allowed."""
    try:
        return _open_or_create_dir_at(fd, name, create_mode)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
    info = os.lstat(name, dir_fd=fd)
    if not stat.S_ISLNK(info.st_mode):
        raise UnsafePathError(errno.ENOTDIR, "not a directory", name)
    if strict:
        raise UnsafePathError(errno.ELOOP, "symlink below a dump root refused", name)
    if info.st_uid != 0:
        raise UnsafePathError(errno.ELOOP, "symlink not owned by root refused", name)
    budget[0] -= 1
    if budget[0] < 0:
        raise UnsafePathError(errno.ELOOP, "too many levels of symlinks", name)
    return _resolve_trusted_link(fd, os.readlink(name, dir_fd=fd), budget)


def _resolve_trusted_link(fd, target, budget):
    """Walk a root-owned link's target with the same rules (never creating anything)."""
    current = os.open("/", _DIR_FLAGS) if target.startswith("/") else os.dup(fd)
    try:
        for name in target.split("/"):
            if not name or name == ".":
                continue
            # '..' of an open directory is its real parent: the kernel follows no link there
            child = _open_dir_at(current, "..") if name == ".." else _step(current, name, None, False, budget)
            os.close(current)
            current = child
        return current
    except BaseException:
        os.close(current)
        raise


def walk_below(parent_fd, names, create_mode=None):
    """Open ``names`` below an open directory, never following any symlink."""
    fd = os.dup(parent_fd)
    try:
        for name in names:
            if not name or name in (".", "..") or "/" in name:
                raise UnsafePathError(errno.EINVAL, "bad path component", name)
            try:
                child = _open_or_create_dir_at(fd, name, create_mode)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePathError(exc.errno, "symlink or non-directory refused", name) from None
                raise
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def write_new_file(dir_fd, name, data, mode=0o600, tmp_name=None):
    """Write ``data`` to a temp file in ``dir_fd`` (O_EXCL|O_NOFOLLOW), then rename it to ``name``.

    Readers never see a partial file. Returns the final name.
    """
    tmp = tmp_name or (TMP_PREFIX + unique_suffix())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        quietly(os.unlink, tmp, dir_fd=dir_fd)
        raise
    return name


def replace_file(dir_fd, name, data, mode=0o600, fsync=True):
    """Atomically replace ``name`` (state files): temp + fsync + rename + fsync(dir)."""
    tmp = TMP_PREFIX + unique_suffix()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        if fsync:
            os.fsync(dir_fd)
    except BaseException:
        quietly(os.unlink, tmp, dir_fd=dir_fd)
        raise


def open_regular(dir_fd, name, flags=os.O_RDONLY):
    """Open an existing regular file below ``dir_fd`` without following symlinks.

    O_NONBLOCK keeps a planted FIFO from hanging the open; the result is checked
    with fstat, so the type test and the later reads concern the same inode.
    Returns (fd, stat_result).
    """
    fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePathError(errno.EINVAL, "not a regular file", name)
        return fd, info
    except BaseException:
        os.close(fd)
        raise


def read_small(dir_fd, name, limit=1024 * 1024):
    """Read a small regular file (no symlinks); raises if larger than ``limit``."""
    fd, info = open_regular(dir_fd, name)
    try:
        if info.st_size > limit:
            raise UnsafePathError(errno.EFBIG, "file too large", name)
        return _read_all(fd, limit), info
    finally:
        os.close(fd)


def _read_all(fd, limit):
    chunks = []
    total = 0
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise UnsafePathError(errno.EFBIG, "file grew too large")
        chunks.append(chunk)
    return b"".join(chunks)


def read_path(path, limit=1024 * 1024):
    """Read a small file by path (trusted, root-managed files only: config, DMI)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        return _read_all(fd, limit)
    finally:
        os.close(fd)


def dir_usage(dir_fd, depth=8):
    """(bytes, newest mtime) of everything below ``dir_fd``, not following symlinks."""
    total = 0
    newest = 0.0
    try:
        names = os.listdir(dir_fd)
    except OSError:
        return 0, 0.0
    for name in names:
        try:
            info = os.lstat(name, dir_fd=dir_fd)
        except OSError:
            continue
        newest = max(newest, info.st_mtime)
        if stat.S_ISDIR(info.st_mode) and depth > 0:
            try:
                child = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                sub_total, sub_newest = dir_usage(child, depth - 1)
            finally:
                os.close(child)
            total += sub_total
            newest = max(newest, sub_newest)
        elif stat.S_ISREG(info.st_mode):
            total += info.st_blocks * 512 if info.st_blocks else info.st_size
    return total, newest


def remove_tree(parent_fd, name, depth=16):
    """Delete ``name`` below ``parent_fd`` recursively without following symlinks."""
    try:
        info = os.lstat(name, dir_fd=parent_fd)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return
    if depth <= 0:
        raise UnsafePathError(errno.ELOOP, "directory tree too deep", name)
    fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent_fd)
    try:
        for child in os.listdir(fd):
            remove_tree(fd, child, depth - 1)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)


def load_json(dir_fd, name, limit):
    """Parse the small JSON file ``name`` below ``dir_fd`` (symlinks are not followed, at most
    ``limit`` bytes). With fastjson's parser: ``status`` reads the state files through here and
    starts without json (and the re/enum it imports). Raises OSError or ValueError."""
    from . import fastjson

    raw, _unused = read_small(dir_fd, name, limit)
    return fastjson.loads(raw.decode("utf-8"))


def dump_json(data, indent=None):
    """``data`` as ASCII JSON bytes, for the uploader's state files (not on the hook's or
    ``status``' path, so the json module is imported here, when a file is written)."""
    import json

    return json.dumps(data, indent=indent).encode("ascii")
