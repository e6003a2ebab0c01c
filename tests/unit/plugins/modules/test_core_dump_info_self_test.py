"""core_dump_info s3_probe runs the real host program's self-test against a real moto server.

The host program is the role's own files, installed the way the host-program integration
tests install it (tests/integration/host_program/ncd_bed.py): real hook, real CLI, real
boto3, real HTTP. Only the fixed paths of the module point into that tree.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract, paths
from ansible_collections.neuron_ops.core_dump.plugins.modules import core_dump_info

HOST_PROGRAM_TESTS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "integration", "host_program")
sys.path.insert(0, os.path.abspath(HOST_PROGRAM_TESTS))
pytest.importorskip("moto")
ncd_bed = pytest.importorskip("ncd_bed")

# The host-program tests' own fixtures (moto server, installed package), reused rather than copied.
_spec = importlib.util.spec_from_file_location("host_program_fixtures", os.path.join(HOST_PROGRAM_TESTS, "conftest.py"))
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
moto = _fixtures.moto
lib_dir = _fixtures.lib_dir

PREFIX_PATTERN = "fleet/dt-%d-cid-%c"


@pytest.fixture
def installed(host, commands, lib_dir, moto, monkeypatch):
    """A host whose profile script sets an S3 prefix, with the real host program installed."""
    bed = ncd_bed.Bed(host.path("/bed"), lib_dir, moto)
    os.chmod(host.path("/bed"), 0o755)
    bed.bucket = moto.new_bucket()
    monkeypatch.setattr(paths, "HOST_PROGRAM", bed.cli)
    monkeypatch.setattr(paths, "HOOK", bed.hook)
    host.write(
        "/etc/profile.d/neuron-core-dump.sh",
        "export %s='s3://%s/%s'\n" % (contract.S3_PREFIX_VAR, bed.bucket, PREFIX_PATTERN),
    )
    host.write("/etc/environment", b"")
    return bed


def test_s3_probe_runs_the_host_programs_self_test(installed, moto, run_module):
    bed = installed
    result, failed = run_module(core_dump_info, {"s3_probe": True, "fail_on_s3_probe": True})
    assert not failed, result.get("msg")
    [probe] = result["s3_probe"]
    assert probe["prefix"] == "s3://%s/%s" % (bed.bucket, PREFIX_PATTERN)
    assert probe["probe"] == "s3://%s/fleet" % bed.bucket
    assert probe["status"] == "passed" and probe["ok"] is True and probe["error"] is None
    names = {c["name"] for c in probe["checks"]}
    assert {"hook file", "per-core call", "runtime-generated call", "s3 probe"} <= names
    # The real uploader path: one put under the dumps' fixed prefix, read back and deleted.
    puts = moto.app.ops(bed.bucket, "PutObject")
    assert len(puts) == 1 and puts[0]["key"].startswith("fleet/")
    assert (
        moto.app.ops(bed.bucket, "DeleteObject") and moto.client().list_objects_v2(Bucket=bed.bucket)["KeyCount"] == 0
    )
    assert os.listdir(bed.dumps) == [] and bed.incoming_entries() == []


def test_s3_probe_uses_the_uploaders_settings(installed, moto, run_module):
    """ExpectedBucketOwner from the host program's config reaches S3 (the old probe ignored it)."""
    bed = installed
    bed.write_config({"s3": dict(bed.base_config()["s3"], expected_bucket_owner=ncd_bed.ACCOUNT_ID)})
    result, _failed = run_module(core_dump_info, {"s3_probe": True})
    puts = moto.app.ops(bed.bucket, "PutObject", ok_only=False)
    assert puts and all(r["headers"].get("x-amz-expected-bucket-owner") == ncd_bed.ACCOUNT_ID for r in puts)
    assert result["s3_probe"][0]["status"] == "passed", result["s3_probe"]


def test_failed_self_test_is_reported_and_can_fail_the_module(installed, moto, run_module):
    bed = installed
    moto.client().delete_bucket(Bucket=bed.bucket)
    result, failed = run_module(core_dump_info, {"s3_probe": True})
    assert not failed
    [probe] = result["s3_probe"]
    assert probe["status"] == "failed" and probe["ok"] is False and probe["error"].startswith("s3 probe: ")
    result, failed = run_module(core_dump_info, {"s3_probe": True, "fail_on_s3_probe": True})
    assert failed and result["msg"].startswith("S3 probe failed: s3://%s/%s: s3 probe: " % (bed.bucket, PREFIX_PATTERN))


def test_check_mode_skips_the_self_test(installed, moto, run_module):
    bed = installed
    result, failed = run_module(core_dump_info, {"s3_probe": True, "fail_on_s3_probe": True}, check_mode=True)
    assert not failed
    [probe] = result["s3_probe"]
    assert probe["status"] == "skipped" and probe["ok"] is None and probe["checks"] == []
    assert [r["op"] for r in moto.app.ops(bed.bucket, ok_only=False)] == ["CreateBucket"]  # the fixture's own


def test_without_the_host_program(host, commands, run_module):
    host.write("/etc/profile.d/neuron-core-dump.sh", "export %s='s3://b/x/%%d'\n" % contract.S3_PREFIX_VAR)
    host.write("/etc/environment", b"")
    result, failed = run_module(core_dump_info, {"s3_probe": True})
    assert not failed
    [probe] = result["s3_probe"]
    assert probe["status"] == "failed" and "is not installed" in probe["error"]
