"""End to end on each host: a non-root workload started from a login session fails on
2 ranks x 2 cores; the vendor files and our records land in the configured local dir
and all of them reach the bed's S3, encrypted and byte for byte, with the manifest."""

from __future__ import annotations

import hashlib
import json
import re
import time

import pytest
from bedtest import (
    HOOK,
    STAND_IN_IN_HOST,
    fake_instance_id,
    hook_calls,
    run_as_login,
    s3_client,
    split_s3_url,
)

WORKLOAD_USER = "trainer"
UPLOAD_DEADLINE_SECONDS = 120


@pytest.fixture(scope="module")
def failure(host, stand_in):
    """Run the stand-in once per host and return (report, instance id)."""
    del stand_in  # the fixture copies the stand-in into the container
    host.run_expect([0], "id %s || useradd --create-home %s" % (WORKLOAD_USER, WORKLOAD_USER))
    iid = fake_instance_id(host)
    result = run_as_login(
        host,
        WORKLOAD_USER,
        "python3 %s --report - --ranks 2 --cores 0:0,0:1 --instance-id %s" % (STAND_IN_IN_HOST, iid),
    )
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout), iid


def wait_for_manifest(s3, bucket: str, key_prefix: str, iid: str) -> dict:
    manifest_key = "%s/%s-manifest.json" % (key_prefix, iid)
    deadline = time.monotonic() + UPLOAD_DEADLINE_SECONDS
    while True:
        try:
            return json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            if time.monotonic() > deadline:
                raise AssertionError("no %s after %d s" % (manifest_key, UPLOAD_DEADLINE_SECONDS)) from None
            time.sleep(1)


def local_sha256(host, dump_dir: str) -> dict:
    listing = host.check_output("cd %s && find . -maxdepth 1 -type f -printf '%%f\\n' | sort" % dump_dir)
    return {
        name: host.check_output("sha256sum %s/%s" % (dump_dir, name)).split()[0] for name in listing.split("\n") if name
    }


def test_settings_reach_the_login_session(failure):
    report, _iid = failure
    assert report["gate"]["enabled"], report["gate"]
    assert report["gate"]["local_template"] == "/var/lib/neuron-core-dump/dumps/dt-%d-cid-%c"
    assert report["gate"]["s3_template"] == "s3://ncd-bed-dumps/fleet/dt-%d-cid-%c"


def test_every_rank_and_core_called_the_hook_into_one_dir(failure):
    report, _iid = failure
    calls = hook_calls(report)
    assert len(report["ranks"]) == 2
    assert sorted(call["kind"] for call in calls) == ["core"] * 4 + ["runtime-generated"] * 2
    assert len({call["local_output_dir"] for call in calls}) == 1
    assert all(call["exit_status"] == 0 for call in calls)


def test_everything_reaches_s3_encrypted_and_byte_identical(host, failure):
    report, iid = failure
    call = hook_calls(report)[0]
    dump_dir, prefix = call["local_output_dir"], call["s3_output_prefix"]
    bucket, key_prefix = split_s3_url(prefix)
    s3 = s3_client()
    manifest = wait_for_manifest(s3, bucket, key_prefix, iid)

    local = local_sha256(host, dump_dir)
    vendor = [name for name in local if re.fullmatch(r"i-[0-9a-f]+-nd\d+-nc\d+-pid-\d+-tid-\d+-lid-\d+", name)]
    records = [name for name in local if name.endswith(".json") and "-ncd-" in name]
    assert len(vendor) == 4, local
    assert len(records) == 6, local
    assert len([name for name in local if name.endswith(".log")]) == 2, local

    for name, digest in local.items():
        obj = s3.get_object(Bucket=bucket, Key="%s/%s" % (key_prefix, name))
        assert obj["ServerSideEncryption"] == "AES256", name
        assert hashlib.sha256(obj["Body"].read()).hexdigest() == digest, name
    manifest_files = json.dumps(manifest)
    for name, digest in local.items():
        assert digest in manifest_files, "%s missing from the manifest" % name


def test_dump_dir_keeps_other_users_out(host, failure):
    report, _iid = failure
    dump_dir = hook_calls(report)[0]["local_output_dir"]
    assert host.file(dump_dir).user == WORKLOAD_USER
    assert host.file(dump_dir).mode & 0o077 == 0
    assert host.file("/var/lib/neuron-core-dump/dumps").mode == 0o1733
    assert host.file(HOOK).mode == 0o755
