"""The CDI ``createContainer`` hook: one dump directory per container, made by the host.

The CDI spec's mount gives every container ``<area>/shared`` at
``/var/lib/neuron-core-dump/dumps``. With per-container directories the spec also names
this hook (``neuron-core-dump oci-hook --area <area>``). The OCI runtime runs it as root
after the container's mounts are set up and before ``pivot_root``, in the container's
mount namespace with the host's tree still visible (runc 1.1: ``prepareRootfs`` runs
``createContainer`` hooks in the container's init process), with the OCI state
(``id``, ``bundle``) on stdin. It

1. finds the spec's mount: the mount point ``<rootfs>/var/lib/neuron-core-dump/dumps``
   in ``/proc/self/mountinfo`` that shows the very directory ``<area>/shared`` (same
   device and inode); a path the image redirected with links is not it;
2. makes ``<area>/by-id/<id>`` (mode 1733 like ``shared``, owned by the host uid the
   container's root maps to) and records ``<area>/by-id/<id>.json`` (root 0600: id,
   hostname and cgroup path from the bundle's ``config.json``, the runtime and image
   from its annotations where present, creation time);
3. bind-mounts ``by-id/<id>`` over the spec's mount point (through ``O_PATH`` fds), and
   remounts it ``nosuid,nodev,noexec``.

It always exits 0 quickly: a failing OCI hook aborts the container. On any error the
spec's own mount stays, so the dump still lands in ``shared`` (attribution ``unknown``),
and the reason goes to syslog. Root only; rootless runtimes are not covered.
"""

import contextlib
import ctypes
import json
import os
import stat
import sys
import time

from . import layout, log, origin

CONTAINER_MOUNT = layout.DUMP_ROOT  # the same path inside the container as on the host
MAX_STATE_BYTES = 1024 * 1024
MS_BIND, MS_REMOUNT, MS_NOSUID, MS_NODEV, MS_NOEXEC = 4096, 32, 2, 4, 8
MNT_DETACH = 2
SLOT_MODE = 0o1733
IMAGE_ANNOTATIONS = (
    "io.kubernetes.cri.image-name",
    "io.kubernetes.cri-o.ImageName",
    "org.opencontainers.image.ref.name",
)


class HookError(Exception):
    pass


def main(argv, stdin=None):
    """Entry point (``neuron-core-dump oci-hook --area A``): exit status 0 whatever happens."""
    try:
        log.setup(log.syslog.LOG_DAEMON)
        area = _area_argument(argv)
        data = (stdin or sys.stdin.buffer).read(MAX_STATE_BYTES)
        state = json.loads(data.decode("utf-8"))
        container_id = run(area, state)
        log.info("container %s: dumps go to %s/by-id/%s" % (container_id[:12], area, container_id))
    except Exception as exc:  # never abort the container: the shared mount stays
        log.warning("oci-hook: per-container dump directory not set up (%s); the shared area is used" % exc)
    return 0


def _area_argument(argv):
    if len(argv) != 2 or argv[0] != "--area" or not argv[1].startswith("/") or ".." in argv[1].split("/"):
        raise HookError("usage: oci-hook --area /absolute/area")
    return argv[1].rstrip("/")


def run(area, state):
    """Set up ``by-id/<id>`` for the container the OCI ``state`` describes; returns the id."""
    container_id = state.get("id") if isinstance(state, dict) else None
    if not origin.valid_container_id(container_id):
        raise HookError("OCI state has no 64-hex container id")
    config = _bundle_config(state.get("bundle"))
    rootfs = _rootfs(config, state["bundle"])
    shared = os.stat(os.path.join(area, "shared"), follow_symlinks=False)
    target = _find_spec_mount(rootfs, shared)
    slot_fd = _make_slot(area, container_id, _host_uid_of_root(config))
    try:
        _write_record(area, container_id, config, state)
        _bind(slot_fd, target, shared)
    finally:
        os.close(slot_fd)
    return container_id


def _bundle_config(bundle):
    if not isinstance(bundle, str) or not bundle.startswith("/"):
        raise HookError("OCI state has no absolute bundle path")
    fd = os.open(os.path.join(bundle, "config.json"), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        data = json.loads(os.read(fd, 16 * MAX_STATE_BYTES).decode("utf-8"))
    finally:
        os.close(fd)
    if not isinstance(data, dict):
        raise HookError("bundle config.json is not an object")
    return data


def _rootfs(config, bundle):
    path = (config.get("root") or {}).get("path")
    if not isinstance(path, str) or not path:
        raise HookError("bundle config.json has no root.path")
    return os.path.normpath(os.path.join(bundle, path))


def _unescape(field):
    """A mountinfo path field (octal escapes for space, tab, newline, backslash)."""
    out, index = [], 0
    while index < len(field):
        if field[index] == "\\" and field[index + 1 : index + 4].isdigit() and index + 4 <= len(field):
            out.append(chr(int(field[index + 1 : index + 4], 8)))
            index += 4
        else:
            out.append(field[index])
            index += 1
    return "".join(out)


def _find_spec_mount(rootfs, shared):
    """The mount point of the spec's mount, checked to show ``shared`` itself."""
    wanted = rootfs.rstrip("/") + CONTAINER_MOUNT
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        points = [_unescape(line.split()[4]) for line in handle if len(line.split()) > 4]
    if wanted not in points:
        raise HookError("no mount at %s (the image may redirect the path)" % wanted)
    info = os.stat(wanted, follow_symlinks=False)
    if (info.st_dev, info.st_ino) != (shared.st_dev, shared.st_ino):
        raise HookError("%s does not show the shared area" % wanted)
    return wanted


def _host_uid_of_root(config):
    """The host uid the container's uid 0 maps to (0 without a user namespace)."""
    for mapping in (config.get("linux") or {}).get("uidMappings") or []:
        if isinstance(mapping, dict) and mapping.get("containerID") == 0 and isinstance(mapping.get("hostID"), int):
            return mapping["hostID"]
    return 0


def _make_slot(area, container_id, owner):
    area_fd = os.open(area, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir("by-id", 0o711, dir_fd=area_fd)
        by_id = os.open("by-id", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=area_fd)
    finally:
        os.close(area_fd)
    try:
        info = os.fstat(by_id)
        if info.st_uid != 0 or info.st_mode & 0o022:
            raise HookError("%s/by-id is not root's" % area)
        try:
            os.mkdir(container_id, 0o700, dir_fd=by_id)
        except FileExistsError:
            raise HookError("by-id/%s exists already (a container id is used once)" % container_id[:12]) from None
        fd = os.open(container_id, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=by_id)
        os.fchown(fd, owner, owner)
        os.fchmod(fd, SLOT_MODE)
        return fd
    finally:
        os.close(by_id)


def _write_record(area, container_id, config, state):
    annotations = config.get("annotations") or {}
    if not isinstance(annotations, dict):
        annotations = {}
    image = next((annotations[k] for k in IMAGE_ANNOTATIONS if isinstance(annotations.get(k), str)), None)
    manager = annotations.get("io.container.manager")
    runtime = (
        "podman"
        if manager == "libpod"
        else ("kubernetes" if "io.kubernetes.cri.sandbox-id" in annotations else manager)
    )
    record = {
        "id": container_id,
        "hostname": config.get("hostname") if isinstance(config.get("hostname"), str) else None,
        "image": image,
        "runtime": runtime if isinstance(runtime, str) else None,
        "cgroup": (config.get("linux") or {}).get("cgroupsPath"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "bundle": state.get("bundle"),
    }
    path = os.path.join(area, "by-id", container_id + ".json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(record, indent=1).encode("utf-8"))
    finally:
        os.close(fd)


def _bind(slot_fd, target, shared):
    libc = ctypes.CDLL(None, use_errno=True)
    target_fd = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(target_fd)
        if not stat.S_ISDIR(info.st_mode) or (info.st_dev, info.st_ino) != (shared.st_dev, shared.st_ino):
            raise HookError("mount point changed under the hook")
        source = ("/proc/self/fd/%d" % slot_fd).encode()
        if libc.mount(source, ("/proc/self/fd/%d" % target_fd).encode(), None, MS_BIND, None) != 0:
            raise OSError(ctypes.get_errno(), "bind mount: %s" % os.strerror(ctypes.get_errno()))
    finally:
        os.close(target_fd)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC
    if libc.mount(None, target.encode(), None, flags, None) != 0:
        code = ctypes.get_errno()
        libc.umount2(target.encode(), MNT_DETACH)  # back to the spec's own (nosuid,nodev,noexec) mount
        raise OSError(code, "remount nosuid,nodev,noexec: %s" % os.strerror(code))
    if os.stat(target).st_ino == shared.st_ino:
        raise HookError("bind mount did not take effect")
