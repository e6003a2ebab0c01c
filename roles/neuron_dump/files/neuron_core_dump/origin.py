"""Which container an adopted dump came from: the ``origin`` record.

``%p`` in a container is the pid inside the container, so a dump's own file names do
not say which container wrote it. The record says what the host knows:

``by-id`` slot (``<area>/by-id/<container id>``, made for that one container by
:mod:`oci_hook` before the container started: the container cannot choose it)
    ``attribution: "enforced"``; ``hostname``, ``image``, ``runtime`` and ``cgroup``
    from the hook's record ``<area>/by-id/<id>.json`` (root 0600, out of the
    container's reach).
``shared`` slot (every container that got the static spec or the drop-in)
    ``attribution: "unknown"``: any container on the host could have written it, and
    the writer has usually exited by the time the directory is quiet.

The record is written into the adopted dump (``ncd-container-origin.json``, uploaded
with it), into the dump's upload state (key ``origin``) and so into its manifest.
"""

import os

from . import fsutil, keys, state

SCHEMA = "neuron-core-dump/container-origin/v1"
RECORD_MAX_BYTES = 64 * 1024
_HEX = frozenset("0123456789abcdef")  # not ``re``: status imports this module (see dump_name)
# what a hook record may contribute, each a short string
RECORD_FIELDS = ("hostname", "image", "runtime", "cgroup", "created")


def valid_container_id(name):
    return isinstance(name, str) and len(name) == 64 and set(name) <= _HEX


def hook_record(area, container_id):
    """The hook's record of ``container_id`` (only the known fields, as text), or {}."""
    data = _read_hook_record(area, container_id)
    return {k: keys.display(str(data[k]))[:512] for k in RECORD_FIELDS if isinstance(data.get(k), (str, int))}


def hook_record_bundle(area, container_id):
    """The OCI bundle path the hook recorded for ``container_id``, or None."""
    bundle = _read_hook_record(area, container_id).get("bundle")
    return bundle if isinstance(bundle, str) and bundle.startswith("/") else None


def _read_hook_record(area, container_id):
    if not valid_container_id(container_id):
        return {}
    try:
        fd = fsutil.walk(os.path.join(area, "by-id"))
    except OSError:
        return {}
    try:
        info = os.lstat(container_id + ".json", dir_fd=fd)
        if info.st_uid != os.geteuid() or info.st_mode & 0o077:
            return {}  # not the hook's (root 0600): a container's root may have put it there
        data = fsutil.load_json(fd, container_id + ".json", RECORD_MAX_BYTES)
    except (OSError, ValueError):
        return {}
    finally:
        os.close(fd)
    if not isinstance(data, dict) or data.get("id") != container_id:
        return {}
    return data


def describe(entry, area, copied, skipped, now_ns):
    """The full record of one adoption (see the module docstring)."""
    container_id = entry.get("container_id")
    found = hook_record(area, container_id) if container_id else {}
    attribution_id = container_id or "shared-" + fsutil.unique_suffix()[-12:]
    return {
        "schema": SCHEMA,
        "origin": {
            "kind": "container",
            "container_id": container_id,
            "hostname": found.get("hostname"),
            "image": found.get("image"),
            "runtime": found.get("runtime"),
            "cgroup": found.get("cgroup"),
            "slot": entry["slot"],
            "attribution": "enforced" if container_id else "unknown",
            "attribution_id": attribution_id,
        },
        "adoption": {
            "name": keys.display(entry["name"]),
            "claimed_name": entry.get("claimed_name"),
            "dir_owner_uid": entry["owner_uid"],
            "dir_owner_gid": entry["owner_gid"],
            "first_seen": _iso(entry["first_seen_ns"]),
            "adopted_at": _iso(now_ns),
            "adopted_at_epoch": now_ns // 1000000000,
            "forced": entry.get("forced"),
            "truncated": bool(entry.get("truncated")),
        },
        "files": copied,
        "skipped": skipped,
    }


def remember(state_dir, dump_dir, record):
    """Put ``record['origin']`` into the dump's upload state, where the manifest takes it from."""
    store = state.Store(state_dir)
    try:
        data = store.load_dump(dump_dir)
        data["origin"] = dict(record["origin"], skipped=len(record["skipped"]))
        store.save_dump(data)
    finally:
        store.close()


def _iso(ns):
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // 1000000000))
