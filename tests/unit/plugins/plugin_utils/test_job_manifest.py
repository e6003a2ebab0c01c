"""The controller's reading of manifests matches the host program's format, and refuses hostile entries."""

from __future__ import annotations

import base64
import json
import sys

import pytest
import scratch_install
from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils import job_manifest

sys.path.insert(0, scratch_install.importable())

from neuron_core_dump import keys, manifest

SHA = "0" * 64


def test_constants_are_the_host_programs():
    assert job_manifest.SUFFIX == manifest.SUFFIX
    assert manifest.SCHEMA.startswith(job_manifest.SCHEMA_PREFIX)


def _parse(*files, key="neuron/job/i-1-manifest.json"):
    doc = {"schema": manifest.SCHEMA, "instance_id": "i-1", "files": list(files)}
    return job_manifest.parse(json.dumps(doc).encode(), key, "neuron/job")


def test_names_from_the_host_programs_describe_round_trip():
    raw = b"core-\xff\x01"
    item = dict(
        keys.describe(raw), key=keys.object_key("neuron/job", raw, keys.collision_suffix(SHA)), size=1, sha256=SHA
    )
    parsed = _parse(item)
    assert parsed.rejected == [] and parsed.entries[0].raw == raw
    assert parsed.stem == "i-1" and parsed.names() == {"i-1"}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"name": ".."}, "starting with '.'"),
        ({"name": "a/b"}, "not one path component"),
        ({"name": "x", "name_b64": base64.b64encode(b"/etc/passwd").decode()}, "not one path component"),
        ({"name": "x", "name_b64": "!!"}, "not base64"),
        ({"name": "x" * 300}, "longer than"),
        ({"name": "x", "key": "other/job/x"}, "not directly below"),
        ({"name": "x", "size": True}, "size"),
        ({"name": "x", "sha256": "ABC"}, "sha256"),
    ],
)
def test_hostile_entries_are_rejected(fields, reason):
    item = dict({"key": "neuron/job/x", "size": 1, "sha256": SHA}, **fields)
    parsed = _parse(item)
    assert parsed.entries == [] and reason in parsed.rejected[0]["reason"]


def test_unusable_manifests_raise():
    with pytest.raises(job_manifest.ManifestError, match="not JSON"):
        job_manifest.parse(b"{", "neuron/job/i-1-manifest.json", "neuron/job")
    with pytest.raises(job_manifest.ManifestError, match="schema"):
        job_manifest.parse(b'{"schema": "other"}', "neuron/job/i-1-manifest.json", "neuron/job")
    with pytest.raises(job_manifest.ManifestError, match="does not name a host"):
        _parse(key="neuron/job/../x-manifest.json")
