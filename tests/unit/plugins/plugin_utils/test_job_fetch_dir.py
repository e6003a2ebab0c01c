"""job_fetch over a pulled directory (pull_job.yml's source): a manifest that is not a regular file
is a bad manifest of the report, never an exception that ends the whole fetch."""

from __future__ import annotations

import hashlib
import json
import os

from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils import job_fetch, job_manifest
from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils.job_source_dir import DirSource

JOB = "dt-20260301-101500-cid-00000000000000aa"


def _host(root, iid, data):
    name = "%s-nd0-nc0-pid-7" % iid
    (root / name).write_bytes(data)
    doc = {
        "schema": job_manifest.SCHEMA_PREFIX + "2",
        "instance_id": iid,
        "files": [{"name": name, "key": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}],
    }
    (root / (iid + job_manifest.SUFFIX)).write_text(json.dumps(doc))


def test_a_manifest_that_is_not_a_regular_file_is_reported_and_the_others_are_fetched(tmp_path):
    pulled = tmp_path / "pulled"
    pulled.mkdir()
    _host(pulled, "i-0000000000000000a", b"good bytes")
    os.symlink("/etc/passwd", pulled / ("i-0000000000000000b" + job_manifest.SUFFIX))
    (pulled / ("i-0000000000000000c" + job_manifest.SUFFIX)).mkdir()
    result = job_fetch.fetch(DirSource(str(pulled)), str(tmp_path / "dest"), JOB)
    assert [bad["key"] for bad in result["bad_manifests"]] == [
        "i-0000000000000000b" + job_manifest.SUFFIX,
        "i-0000000000000000c" + job_manifest.SUFFIX,
    ]
    assert not result["complete"] and result["downloaded_files"] == 1
    assert (tmp_path / "dest" / JOB / "i-0000000000000000a" / "i-0000000000000000a-nd0-nc0-pid-7").read_bytes() == (
        b"good bytes"
    )
