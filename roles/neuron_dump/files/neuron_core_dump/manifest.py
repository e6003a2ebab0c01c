"""The manifest: written last below a dump's S3 prefix, the completion marker of its upload.

Name: ``<instance id>-manifest.json``, written with ``IfNoneMatch``. When that key holds
the manifest of another dump dir or owner (two local dirs mapped to one prefix, or
another user naming our prefix), ours is ``<instance id>-<12 hex of sha256(dump dir,
uid)>-manifest.json``: unique per dump dir and owner, while all ranks of one job on one
host (one dump dir) share one. A rewrite (more files arrived) uses ``IfMatch`` on the
ETag we wrote; a manifest of ours whose state was lost is recognised by its dump dir,
host and uid. Nothing another dump wrote is ever replaced.

Content (schema v2): ``instance_id``, ``hostname`` and ``host``; ``dump_dir`` (escaped,
see :mod:`keys`, with ``dump_dir_b64`` when not exact); ``owner`` (uid and user of the
dump dir) and ``entry_uid``; ``s3_prefix`` and ``also_requested_prefixes``; ``files``
(``name`` / ``name_b64``, ``key``, ``size``, ``sha256``, ``owner_uid``, ``owner`` and, when
ours went to a disambiguated key, ``collision`` with the taken key and its owner);
``skipped`` (name and reason: not a regular file, symlink, vanished, unreadable, hard
links, foreign owner, reserved name); ``written``.
"""

import hashlib
import json
import time

from . import hostinfo, keys, s3

SUFFIX = "-manifest.json"
SCHEMA = "neuron-core-dump/manifest/v2"
MAX_READ = 4 * 1024 * 1024


def document(progress, dump_info, target, user_name):
    """The manifest of one dump at one prefix (without ``written``, so unchanged content has one fingerprint)."""
    prefix_state = progress.prefix
    files = []
    for name, entry in sorted(prefix_state["files"].items()):
        item = keys.describe(name)
        item.update({"key": entry.get("key"), "size": entry.get("size"), "sha256": entry.get("sha256")})
        if entry.get("uid") is not None:
            item["owner_uid"] = entry["uid"]
            item["owner"] = user_name(entry["uid"])
        if entry.get("collision"):
            item["collision"] = entry["collision"]
        files.append(item)
    skipped = []
    for name, entry in sorted(prefix_state["skipped"].items()):
        item = keys.describe(name)
        item["reason"] = entry.get("reason")
        if entry.get("uid") is not None:
            item["owner_uid"] = entry["uid"]
        skipped.append(item)
    dump_dir = keys.describe(progress.dump_dir)
    extra = {"origin": progress.data["origin"]} if progress.data.get("origin") else {}  # adopt.py
    return {
        **extra,
        "schema": SCHEMA,
        "instance_id": progress.instance_id,
        "hostname": hostinfo.hostname(),
        "host": {"instance_id": progress.instance_id, "hostname": hostinfo.hostname()},
        "dump_dir": dump_dir["name"],
        "dump_dir_b64": dump_dir.get("name_b64"),
        "owner": {"uid": dump_info.st_uid, "user": user_name(dump_info.st_uid)},
        "entry_uid": target.uid,
        "s3_prefix": "s3://%s/%s" % (target.bucket, target.key_prefix),
        "also_requested_prefixes": [keys.display(p) for p in progress.data.get("also_requested_prefixes") or []],
        "files": files,
        "skipped": skipped,
    }


def write(client, progress, dump_info, target, user_name, logger):
    """Write (or rewrite) the manifest of ``progress.prefix`` unless it is unchanged; see the module docstring."""
    content = document(progress, dump_info, target, user_name)
    fingerprint = hashlib.sha256(json.dumps(content).encode("ascii")).hexdigest()
    previous = progress.prefix.get("manifest") or {}
    if previous.get("fingerprint") == fingerprint:
        return
    content["written"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data = json.dumps(content, indent=1).encode("ascii")
    if previous.get("key"):
        candidates = [previous["key"]]
    else:
        tag = hashlib.sha256(("%s\0%d" % (progress.dump_dir, target.uid)).encode("utf-8", "surrogateescape"))
        unique = "%s-%s%s" % (progress.instance_id, tag.hexdigest()[:12], SUFFIX)
        candidates = [
            keys.object_key(target.key_prefix, progress.instance_id + SUFFIX),
            keys.object_key(target.key_prefix, unique),
        ]
    for key in candidates:
        our_etag = previous.get("etag") if key == previous.get("key") else None
        etag = _put(client, target, key, data, our_etag, content)
        if etag is not False:
            progress.manifest_written(key, etag, fingerprint)
            return
        logger.warning(
            "s3://%s/%s is the manifest of another dump; %s (uid %d) uses another name"
            % (target.bucket, key, keys.display(progress.dump_dir), target.uid)
        )
    raise s3.S3Error("no free manifest name below s3://%s/%s" % (target.bucket, target.key_prefix))


def _put(client, target, key, data, our_etag, content):
    """Write our manifest at ``key`` unless another dump's is there. ETag, or False when taken."""
    digest = hashlib.sha256(data).digest()
    metadata = target.metadata(digest.hex())

    def put(**condition):
        answer = client.put_bytes(
            target.bucket, key, data, digest, content_type="application/json", metadata=metadata, **condition
        )
        return (answer or {}).get("ETag")

    try:
        if our_etag:
            try:
                return put(if_match=our_etag)
            except Exception as exc:
                if s3.error_code(exc) not in ("NoSuchKey", "404"):
                    raise
                # ours was deleted (lifecycle rule, an operator): write it anew, still never over another
        return put(if_none_match=True)
    except Exception as exc:
        if not s3.is_precondition_failed(exc):
            raise
    existing = client.get_bytes(target.bucket, key, MAX_READ)
    if existing is None:
        return put(if_none_match=True)
    try:
        other = json.loads(existing[0].decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    # v1 manifests (before owners were recorded) have no entry_uid: the dump dir and host decide
    same = (
        isinstance(other, dict)
        and all(other.get(field) == content.get(field) for field in ("dump_dir", "dump_dir_b64", "instance_id"))
        and other.get("entry_uid", target.uid) == target.uid
    )
    if not same:
        return False
    return put(if_match=existing[1])  # ours, from a run whose state was lost
