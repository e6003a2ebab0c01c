# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a host's dump manifest (as the uploader writes it) without trusting it.

The format is the host program's (roles/neuron_dump/files/neuron_core_dump/manifest.py,
schema v2; docs/s3.md): ``<instance id>-manifest.json``, or ``<instance id>-<12 hex>-
manifest.json`` for a second dump dir or owner of the same host under one job prefix,
listing ``files`` (``name`` for display, ``name_b64`` with the exact bytes when the name
is not plain UTF-8, ``key``, ``size``, ``sha256``) and ``skipped``. The constants below
are that format's; tests/unit/plugins/plugin_utils/test_job_manifest.py checks they
match the host program's.

Anyone who may write below the job prefix may write a manifest, so each entry is checked
before it names anything on the controller: one path component of at most 255 bytes, no
``/``, NUL, ``.``/``..``, no leading dot (the uploader never uploads such names, and our
temporary files use them), no name twice; the key below the job prefix and no deeper;
size and sha256 well formed. Entries that fail are *rejected* (reported, never fetched).
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from ansible_collections.neuron_ops.core_dump.plugins.module_utils.escaping import name as printable_name

SUFFIX = "-manifest.json"
SCHEMA_PREFIX = "neuron-core-dump/manifest/"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_NAME_BYTES = 255
# a manifest's key stem names a directory on the controller: instance ids and 12-hex tags only
_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+@,~-]{0,199}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(ValueError):
    """The manifest as a whole cannot be used (not JSON, not ours, no file list)."""


class Entry:
    """One file of a host's dump: the exact name bytes, where it is, what it must be."""

    __slots__ = ("key", "name", "raw", "sha256", "size")

    def __init__(self, raw, key, size, sha256):
        self.raw = raw
        self.name = printable_name(raw)
        self.key = key
        self.size = size
        self.sha256 = sha256


class HostManifest:
    """One manifest: which host and dump dir, its files (checked) and what was rejected or skipped."""

    def __init__(self, stem, key, document, entries, rejected):
        self.stem = stem
        self.key = key
        self.instance_id = _text(document.get("instance_id"))
        self.hostname = _text(document.get("hostname"))
        self.dump_dir = _text(document.get("dump_dir"))
        self.written = _text(document.get("written"))
        self.entries = entries
        self.rejected = rejected
        self.skipped = [
            {"name": _text(item.get("name")), "reason": _text(item.get("reason"))}
            for item in document.get("skipped") or []
            if isinstance(item, dict)
        ]

    def names(self):
        """Names an expected host may be given as: instance id, hostname, or the manifest's stem."""
        return {value for value in (self.instance_id, self.hostname, self.stem) if value}


def _text(value):
    return printable_name(value) if isinstance(value, str) else None


def stem_of(key, key_prefix):
    """The host directory name of a manifest key directly below ``key_prefix``, or None."""
    head = key_prefix + "/" if key_prefix else ""
    if not key.startswith(head) or not key.endswith(SUFFIX):
        return None
    stem = key[len(head) : -len(SUFFIX)]
    return stem if _STEM.match(stem) else None


def raw_name(item):
    """The exact bytes of an entry's name (``name_b64`` wins), or raise ValueError."""
    if item.get("name_b64") is not None:
        try:
            return base64.b64decode(str(item["name_b64"]), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("name_b64 is not base64") from None
    if not isinstance(item.get("name"), str):
        raise ValueError("no name")
    return item["name"].encode("utf-8", "surrogateescape")


def name_problem(raw):
    """Why ``raw`` may not name a file in a host directory on the controller, or None."""
    if not raw:
        return "empty name"
    if len(raw) > MAX_NAME_BYTES:
        return "name longer than %d bytes" % MAX_NAME_BYTES
    if b"/" in raw or b"\0" in raw:
        return "name with '/' or NUL: not one path component"
    if raw.startswith(b"."):
        return "name starting with '.' ('.', '..' and hidden names are never uploaded)"
    if raw.endswith(SUFFIX.encode("ascii")):
        return "reserved name: only the uploader writes manifests"
    return None


def _entry(item, key_prefix, seen):
    if not isinstance(item, dict):
        raise ValueError("not an object")
    raw = raw_name(item)
    problem = name_problem(raw)
    if problem:
        raise ValueError(problem)
    if raw in seen:
        raise ValueError("listed twice")
    key = item.get("key")
    head = key_prefix + "/" if key_prefix else ""
    if not isinstance(key, str) or not key.startswith(head) or "/" in key[len(head) :] or key == head:
        raise ValueError("key %r is not directly below the job prefix" % (str(key)[:200],))
    size = item.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError("size is not a non-negative integer")
    digest = item.get("sha256")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise ValueError("sha256 is not 64 lower-case hex digits")
    return Entry(raw, key, size, digest)


def parse(data, key, key_prefix):
    """A HostManifest from the bytes of the manifest at ``key``; ManifestError when unusable."""
    stem = stem_of(key, key_prefix)
    if stem is None:
        raise ManifestError("manifest key %r does not name a host" % key[:200])
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError("manifest larger than %d bytes" % MAX_MANIFEST_BYTES)
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestError("manifest is not JSON: %s" % exc) from None
    if not isinstance(document, dict) or not str(document.get("schema", "")).startswith(SCHEMA_PREFIX):
        raise ManifestError("not a neuron-core-dump manifest (schema %r)" % str(document.get("schema"))[:80])
    files = document.get("files")
    if not isinstance(files, list):
        raise ManifestError("manifest has no file list")
    entries, rejected, seen = [], [], set()
    for item in files:
        try:
            entry = _entry(item, key_prefix, seen)
        except ValueError as exc:
            shown = item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else "?"
            rejected.append({"name": printable_name(shown), "reason": str(exc)})
            continue
        seen.add(entry.raw)
        entries.append(entry)
    return HostManifest(stem, key, document, entries, rejected)
