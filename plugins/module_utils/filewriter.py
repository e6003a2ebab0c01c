# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planned file changes: compare, diff, then write atomically or remove.

A change is computed from bytes (before/after, None = no file) so ``changed``
is exact and check mode is a plan that is simply not applied.
"""

from __future__ import annotations

import errno
import grp
import hashlib
import os
import pwd
import stat
import tempfile

# A diff shows a file's text up to this size; a larger file, or bytes that are not UTF-8,
# get one summary line (summary_line) instead.
TEXT_DIFF_LIMIT = 64 * 1024


def read_bytes(path):
    """Content of ``path`` (following symlinks), or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def sha256_file(path, follow=True):
    """sha256 of ``path``'s bytes; with ``follow=False`` a symlink there is an error (ELOOP), never read through."""
    fd = os.open(path, os.O_RDONLY | (0 if follow else os.O_NOFOLLOW))
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def account_name(lookup, ident):
    """``pwd.getpwuid``/``grp.getgrgid``'s name for ``ident``, or the number when there is none."""
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


def diff_text(data):
    """``data`` as a diff shows it, or None when it is too large or not UTF-8 (use summary_line)."""
    if len(data) > TEXT_DIFF_LIMIT:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def summary_line(what, mode, owner, group):
    """A diff's line for a file shown without its text: ``what`` (its sha256, or "directory"), mode, owner."""
    return "%s %s %s:%s\n" % (what, mode, owner, group)


def summary_of_existing(what, info):
    """summary_line for a file on disk: ``what`` with the mode and owner names of its stat ``info``."""
    return summary_line(
        what,
        "%04o" % stat.S_IMODE(info.st_mode),
        account_name(pwd.getpwuid, info.st_uid),
        account_name(grp.getgrgid, info.st_gid),
    )


def _text(data):
    return "" if data is None else data.decode("utf-8", "replace")


class FileChange:
    """One file a target wants to be ``after`` (None: absent)."""

    def __init__(self, target, path, before, after, mode=0o644):
        self.target = target
        self.path = path
        self.before = before
        self.after = after
        self.mode = mode

    @property
    def changed(self):
        return self.before != self.after

    def diff(self):
        return {
            "before_header": self.path if self.before is not None else "%s (absent)" % self.path,
            "after_header": self.path if self.after is not None else "%s (absent)" % self.path,
            "before": _text(self.before),
            "after": _text(self.after),
        }

    def apply(self, module=None):
        """Make the file match the plan; returns True when something was done."""
        if not self.changed:
            return False
        if self.after is None:
            remove(self.path)
        else:
            write_atomic(self.path, self.after, module=module, new_mode=self.mode)
        return True


def write_atomic(path, data, module=None, new_mode=0o644):
    """Replace ``path`` with ``data`` in one rename.

    A symlinked target is written through (its target replaced, the link kept).
    An existing file keeps its mode and owner; a new one gets ``new_mode``.
    With ``module`` the rename is AnsibleModule.atomic_move (SELinux context).
    """
    real = os.path.realpath(path)
    directory = os.path.dirname(real)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    try:
        existing = os.stat(real)
    except FileNotFoundError:
        existing = None
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(real), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if existing is not None:
            os.chmod(tmp, existing.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(tmp, existing.st_uid, existing.st_gid)
        else:
            os.chmod(tmp, new_mode)
        if module is not None:
            module.atomic_move(tmp, real)
            if existing is None:
                os.chmod(real, new_mode)
        else:
            os.replace(tmp, real)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _fsync_directory(directory)


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    _fsync_directory(os.path.dirname(path))


def remove_empty_directory(path):
    """Remove ``path`` if it is an empty directory; True when removed."""
    try:
        os.rmdir(path)
    except OSError:
        return False
    return True


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
