# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a container gets, and the host's container dump area (docs/containers.md).

A container keeps its image's own ``neuron-dump``. It gets a local directory
inside a bind mount of the host's area and an EMPTY S3 prefix, so the image's
hook never uploads with the container's credentials: the host uploader adopts
what lands in the area and uploads it with the host's credentials, under the
host's prefix. The values a container gets therefore depend only on the state
(enabled / disabled / absent), never on the host's own local_dir or s3_prefix.
"""

from __future__ import annotations

import os
import posixpath
import stat

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract, paths, patterns, values

# Inside the container: the mount point and the pattern libnrt expands there.
# The host uploader parses the directory names back (dt-<date-time>-cid-<cluster id>),
# so the pattern is fixed on purpose.
CONTAINER_MOUNT = "/var/lib/neuron-core-dump/dumps"
CONTAINER_PATTERN = "dt-%d-cid-%c"
CONTAINER_LOCAL_DIR = CONTAINER_MOUNT + "/" + CONTAINER_PATTERN

# The area on the host: root-only parent, one sticky write-only subdirectory that
# every container of the static spec shares (see docs/containers.md for what
# that does and does not isolate).
SHARED = "shared"
AREA_MODE = 0o711
SHARED_MODE = 0o1733
MOUNT_OPTIONS = ("rw", "nosuid", "nodev", "noexec")

# Paths a dump area must not be under: volatile, world-writable or virtual.
_FORBIDDEN_ROOTS = ("/tmp", "/var/tmp", "/dev", "/proc", "/sys", "/run/user")


def container_values(host_values):
    """The variables a container gets for the host's ``values`` (None: no file)."""
    if host_values is None:
        return None
    if not host_values.get(contract.LOCAL_DIR_VAR):
        return {contract.LOCAL_DIR_VAR: "", contract.S3_PREFIX_VAR: ""}
    return {contract.LOCAL_DIR_VAR: CONTAINER_LOCAL_DIR, contract.S3_PREFIX_VAR: ""}


def enabled(container_vars):
    return bool((container_vars or {}).get(contract.LOCAL_DIR_VAR))


def shared_dir():
    return os.path.join(paths.CONTAINER_DUMP_AREA, SHARED)


def area_of(shared):
    """The area whose shared directory is ``shared`` (a mount source), or None."""
    if isinstance(shared, str) and shared.startswith("/") and os.path.basename(shared) == SHARED:
        return os.path.dirname(shared)
    return None


def option_problems(area, host_local_dir=None):
    """Rules for the container_dump_dir option (the string, not the disk)."""
    found = []
    if not area or not area.startswith("/"):
        return ["container_dump_dir: must be an absolute path (got %r)" % area]
    if posixpath.normpath(area) != area or area.startswith("//"):
        found.append("container_dump_dir: must be a normalized path without '.', '..', '//' or a trailing '/'")
    unsafe = values.unsafe_characters(area)
    if "%" in area:
        unsafe.append("percent sign")
    for ch, name in ((":", "colon (Podman's volume separator)"), (",", "comma (mount option separator)")):
        if ch in area:
            unsafe.append(name)
    if unsafe:
        found.append("container_dump_dir: unsafe characters: %s" % ", ".join(unsafe))
    if area == "/" or any(area == r or area.startswith(r + "/") for r in _FORBIDDEN_ROOTS):
        found.append("container_dump_dir: must not be '/' or under %s (got %r)" % (", ".join(_FORBIDDEN_ROOTS), area))
    if host_local_dir:
        base = patterns.storage_root(host_local_dir)[0]
        if base and (_inside(area, base) or _inside(base, area)):
            found.append(
                "container_dump_dir: %r overlaps the host's dump directory %r; containers must not reach host dumps"
                % (area, base)
            )
    return found


def _inside(path, parent):
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def disk_problems(area):
    """Why ``area`` (a host path) cannot be used safely as it is on disk; [] when it can."""
    found = []
    if os.path.realpath(area) != os.path.abspath(area):
        return [
            "container_dump_dir: %s resolves through a symlink; refusing (a link could point the area anywhere)" % area
        ]
    current = area
    while True:
        try:
            st = os.lstat(current)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if st is not None:
            if not stat.S_ISDIR(st.st_mode):
                found.append("container_dump_dir: %s exists and is not a directory" % current)
            elif os.geteuid() == 0 and st.st_uid != 0:
                found.append("container_dump_dir: %s is owned by uid %d, not root" % (current, st.st_uid))
            elif current != area and st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
                found.append("container_dump_dir: %s is writable by group or others (not sticky)" % current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    shared = os.path.join(area, SHARED)
    try:
        st = os.lstat(shared)
    except (FileNotFoundError, NotADirectoryError):
        return found
    if not stat.S_ISDIR(st.st_mode):
        found.append("container_dump_dir: %s exists and is not a directory" % shared)
    elif os.geteuid() == 0 and st.st_uid != 0:
        found.append("container_dump_dir: %s is owned by uid %d, not root" % (shared, st.st_uid))
    return found


def writable_problems(label, directory):
    """Is ``directory`` (or the nearest existing parent, where it would be made) writable?"""
    current = directory
    while not os.path.lexists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if not os.path.isdir(current):
        return ["%s: %s is not a directory" % (label, current)]
    if not os.access(current, os.W_OK | os.X_OK):
        return ["%s: %s is not writable (read-only file system or permissions)" % (label, current)]
    return []


def describe(area):
    """State of the area as text, for the diff: one line per directory."""
    lines = []
    for path in (area, os.path.join(area, SHARED)):
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            lines.append("%s: absent" % path)
            continue
        lines.append("%s: directory mode %04o uid %d" % (path, stat.S_IMODE(st.st_mode), st.st_uid))
    return "\n".join(lines) + "\n"


def wanted(area):
    return "%s: directory mode %04o uid 0\n%s: directory mode %04o uid 0\n" % (
        area,
        AREA_MODE,
        os.path.join(area, SHARED),
        SHARED_MODE,
    )


class AreaChange:
    """Make the area and its shared directory exist with their modes (never removes: it holds dumps)."""

    target = "container_area"

    def __init__(self, area):
        self.path = area
        self.before = describe(area).encode()
        self.after = wanted(area).encode() if os.geteuid() == 0 else self._same_owner()

    def _same_owner(self):
        # Not root (unit tests): ownership is not ours to set, compare modes only.
        return "".join(
            line.rsplit(" uid ", 1)[0] + " uid %d\n" % os.geteuid() for line in wanted(self.path).splitlines()
        ).encode()

    @property
    def changed(self):
        return self.before != self.after

    def diff(self):
        return {
            "before_header": "%s (container dump area)" % self.path,
            "after_header": "%s (container dump area)" % self.path,
            "before": self.before.decode(),
            "after": self.after.decode(),
        }

    def apply(self, module=None):
        del module
        if not self.changed:
            return False
        for path, mode in ((self.path, AREA_MODE), (os.path.join(self.path, SHARED), SHARED_MODE)):
            if not os.path.isdir(path):
                os.makedirs(path, 0o700)
            # chmod after mkdir: the umask must not decide the mode. lchown/chmod on a
            # directory we just checked (disk_problems refused links).
            if os.geteuid() == 0:
                os.lchown(path, 0, 0)
            os.chmod(path, mode)
        return True


def report(area):
    """core_dump_info's view of the area: exists, modes, and what is wrong."""
    shared = os.path.join(area, SHARED)
    result = {"path": area, "shared": shared, "exists": os.path.isdir(shared), "problems": disk_problems(area)}
    for path, mode in ((area, AREA_MODE), (shared, SHARED_MODE)):
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_IMODE(st.st_mode) != mode:
            result["problems"].append("%s has mode %04o, expected %04o" % (path, stat.S_IMODE(st.st_mode), mode))
    return result
