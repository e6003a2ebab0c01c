"""The uploader end to end: real `neuron-core-dump upload` processes against a real moto server."""

import json
import os
import signal
import time

import pytest
from ncd_bed import ACCOUNT_ID, INSTANCE_ID, object_sha256, sha256_file

MIB = 1024 * 1024


def _files(path):
    return sorted(n for n in os.listdir(path) if not n.startswith("."))


def _manifest(moto, bucket, prefix):
    body = moto.client().get_object(Bucket=bucket, Key="%s/%s-manifest.json" % (prefix, INSTANCE_ID))["Body"]
    return json.loads(body.read())


def _hook_calls(bed, dump, prefix, ranks=2, cores=2):
    """What the runtime stand-in does: per rank, one call per core plus one --runtime-generated."""
    for rank in range(ranks):
        pid = 500 + rank
        for core in range(cores):
            proc, _unused = bed.run_hook(
                bed.runtime_argv(dump, pid=pid, tid=pid, log_id=core, device=rank, core=core, prefix=prefix)
            )
            assert proc.returncode == 0, proc.stderr
        runtime_file = os.path.join(bed.base, "%s-nrt-pid-%d.log" % (INSTANCE_ID, pid))
        with open(runtime_file, "w") as handle:
            handle.write("runtime log of rank %d\n" % rank)
        proc, _unused = bed.run_hook(
            bed.runtime_argv(dump, pid=pid, tid=pid, log_id=cores, prefix=prefix, runtime_file=runtime_file)
        )
        assert proc.returncode == 0, proc.stderr


def test_upload_end_to_end_with_sse_and_manifest(s3bed, moto):
    bed = s3bed
    bed.write_config({"s3": {"expected_bucket_owner": ACCOUNT_ID}})
    # a vendor capture that writes its hardware-state file, like the real one
    bed.write_vendor(
        "#!/bin/sh\nwhile [ $# -gt 0 ]; do case $1 in --local-output-dir) d=$2;; --pid) p=$2;; "
        "--device-id) nd=$2;; --core-id) nc=$2;; esac; shift; done\n"
        '[ -n "$nd" ] && head -c 200000 /dev/urandom > "$d/%s-nd$nd-nc$nc-pid-$p-tid-$p-lid-0"\nexit 0\n' % INSTANCE_ID
    )
    dump = bed.dump_dir()
    prefix = "s3://%s/dumps/dt-1-cid-0" % bed.bucket
    _hook_calls(bed, dump, prefix)
    proc = bed.run_cli("upload", "--json", check=True)
    uploader_requests = [r for r in moto.app.ops(bed.bucket, ok_only=False) if r["op"] != "CreateBucket"]
    result = json.loads(proc.stdout)
    local = _files(dump)
    assert (
        result["uploaded_files"] == len(local) == 2 * 2 * 2 + 2 * 2
    )  # vendor + records per core, log + record per rank
    assert result["dumps_done"] == 1 and result["errors"] == []
    client = moto.client()
    for name in local:
        head = client.head_object(Bucket=bed.bucket, Key="dumps/dt-1-cid-0/" + name)
        assert head["ServerSideEncryption"] == "AES256"
        assert object_sha256(client, bed.bucket, "dumps/dt-1-cid-0/" + name) == sha256_file(os.path.join(dump, name))
    manifest = _manifest(moto, bed.bucket, "dumps/dt-1-cid-0")
    assert manifest["instance_id"] == INSTANCE_ID
    assert {f["name"]: f["sha256"] for f in manifest["files"]} == {n: sha256_file(os.path.join(dump, n)) for n in local}
    # the manifest is the last object written
    puts = [r for r in moto.app.ops(bed.bucket) if r["op"] in ("PutObject", "CompleteMultipartUpload")]
    assert puts[-1]["key"].endswith("-manifest.json")
    # every request carried the bucket-owner guard
    assert uploader_requests
    assert all(r["headers"].get("x-amz-expected-bucket-owner") == ACCOUNT_ID for r in uploader_requests)
    assert bed.queue_entries() == [] and bed.incoming_entries() == []
    # status reports success
    status = json.loads(bed.run_cli("status", "--json", check=True).stdout)
    assert status["spool_depth"] == 0 and status["pending_dumps"] == 0
    assert status["last_success"] and status["last_error"] is None
    assert status["uploader"]["healthy"] is True
    # a second run uploads nothing
    again = json.loads(bed.run_cli("upload", "--json", check=True).stdout)
    assert again["uploaded_files"] == 0
    assert len([r for r in moto.app.ops(bed.bucket) if r["op"] == "PutObject"]) == len(puts)


def test_kms_encryption_headers(s3bed, moto):
    import boto3

    bed = s3bed
    kms = boto3.client("kms", endpoint_url=moto.url, region_name="us-east-1")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    bed.write_config({"s3": {"sse": "aws:kms", "kms_key_id": key_id, "multipart_threshold_bytes": 5 * MIB}})
    dump = bed.make_dump("dt-kms", {"small.bin": b"x" * 1000, "big.bin": os.urandom(6 * MIB)})
    bed.enqueue(dump, "s3://%s/kms" % bed.bucket)
    bed.run_cli("upload", check=True)
    client = moto.client()
    for name in ("small.bin", "big.bin"):
        head = client.head_object(Bucket=bed.bucket, Key="kms/" + name)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert key_id in head["SSEKMSKeyId"]
        assert object_sha256(client, bed.bucket, "kms/" + name) == sha256_file(os.path.join(dump, name))
    creates = moto.app.ops(bed.bucket, "CreateMultipartUpload")
    assert len(creates) == 1 and creates[0]["headers"]["x-amz-server-side-encryption"] == "aws:kms"


def test_no_prefix_stays_local(s3bed, moto):
    bed = s3bed
    dump = bed.dump_dir()
    proc, _unused = bed.run_hook(bed.runtime_argv(dump))
    assert proc.returncode == 0
    result = json.loads(bed.run_cli("upload", "--json", check=True).stdout)
    assert result["dumps_local_only"] == 1 and result["uploaded_files"] == 0
    assert bed.queue_entries() == []
    assert moto.app.ops(bed.bucket, "PutObject") == []
    listing = json.loads(bed.run_cli("list", "--json", check=True).stdout)["dumps"]
    assert [(d["path"], d["status"]) for d in listing] == [(dump, "local")]


def test_s3_down_then_up_loses_nothing(s3bed, moto):
    bed = s3bed
    dump = bed.dump_dir()
    prefix = "s3://%s/outage" % bed.bucket
    moto.stop()
    try:
        _hook_calls(bed, dump, prefix)  # the failure happens while S3 is unreachable
        proc = bed.run_cli("upload", "--json")
        assert proc.returncode == 1
        result = json.loads(proc.stdout)
        assert result["dumps_failed"] == 1 and result["uploaded_files"] == 0
        entries = bed.queue_entries()
        assert len(entries) == 6 and all(e["attempts"] == 1 and e["last_error"] for e in entries)
        status = json.loads(bed.run_cli("status", "--json").stdout)
        assert status["last_error"] and "outage" in status["last_error"]
        assert status["uploader"]["healthy"] is False and status["pending_dumps"] == 1
        assert os.path.isdir(dump) and len(_files(dump)) == 8
    finally:
        moto.start()
    result = json.loads(bed.run_cli("upload", "--json", check=True).stdout)
    assert result["uploaded_files"] == 8 and result["dumps_done"] == 1
    client = moto.client()
    for name in _files(dump):
        assert object_sha256(client, bed.bucket, "outage/" + name) == sha256_file(os.path.join(dump, name))
    assert bed.queue_entries() == []
    status = json.loads(bed.run_cli("status", "--json").stdout)
    assert status["last_error"] is None and status["uploader"]["healthy"] is True


def test_transient_503s_are_retried(s3bed, moto):
    bed = s3bed
    bed.write_config({"s3": {"max_attempts": 6, "retry_base_seconds": 0.2, "retry_max_seconds": 0.5}})
    dump = bed.make_dump("dt-retry", {"a": b"a" * 100, "b": b"b" * 100})
    bed.enqueue(dump, "s3://%s/retry" % bed.bucket)
    moto.app.down = True
    try:
        proc = bed.popen_cli("upload", "--json")
        deadline = time.time() + 30
        while not moto.app.ops(bed.bucket, "PutObject", ok_only=False) and time.time() < deadline:
            time.sleep(0.01)
    finally:
        moto.app.down = False
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["uploaded_files"] == 2
    assert any(r["status"] == 503 for r in moto.app.ops(bed.bucket, ok_only=False))


@pytest.mark.slow
def test_sigkill_mid_multipart_then_rerun_completes_with_identical_bytes(s3bed, moto):
    bed = s3bed
    bed.write_config(
        {"s3": {"multipart_threshold_bytes": 5 * MIB, "multipart_chunk_bytes": 5 * MIB, "max_concurrency": 1}}
    )
    data = os.urandom(30 * MIB + 12345)  # 7 parts
    dump = bed.make_dump("dt-kill", {"%s-nd0-nc0-pid-1-tid-1-lid-0" % INSTANCE_ID: data})
    bed.enqueue(dump, "s3://%s/kill" % bed.bucket)
    moto.app.delays["UploadPart"] = 0.3
    try:
        proc = bed.popen_cli("upload")
        deadline = time.time() + 60
        while len(moto.app.ops(bed.bucket, "UploadPart")) < 2 and time.time() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        moto.app.delays.clear()
    assert moto.app.ops(bed.bucket, "CompleteMultipartUpload") == []
    parts_before = len(moto.app.ops(bed.bucket, "UploadPart"))
    assert 2 <= parts_before < 7
    bed.run_cli("upload", check=True)
    key = "kill/%s-nd0-nc0-pid-1-tid-1-lid-0" % INSTANCE_ID
    client = moto.client()
    assert object_sha256(client, bed.bucket, key) == sha256_file(os.path.join(dump, os.path.basename(key)))
    assert len(moto.app.ops(bed.bucket, "ListParts")) >= 1  # resumed, not restarted
    assert len(moto.app.ops(bed.bucket, "CreateMultipartUpload")) == 1
    assert len(moto.app.ops(bed.bucket, "CompleteMultipartUpload")) == 1
    parts_after = len(moto.app.ops(bed.bucket, "UploadPart")) - parts_before
    assert parts_after <= 7 - 2  # the parts already there were verified and kept
    assert client.list_multipart_uploads(Bucket=bed.bucket).get("Uploads", []) == []
    assert _manifest(moto, bed.bucket, "kill")["files"][0]["sha256"] == sha256_file(
        os.path.join(dump, os.path.basename(key))
    )


@pytest.mark.slow
def test_two_concurrent_uploaders_upload_each_file_exactly_once(s3bed, moto):
    bed = s3bed
    bed.write_config({"s3": {"multipart_threshold_bytes": 5 * MIB, "multipart_chunk_bytes": 5 * MIB}})
    files = {"f%02d" % i: os.urandom(50000 + i) for i in range(30)}
    files["big"] = os.urandom(12 * MIB)
    dump = bed.make_dump("dt-race", files)
    prefix = "s3://%s/race" % bed.bucket
    for _unused in range(6):
        bed.enqueue(dump, prefix)
    moto.app.delays["PutObject"] = 0.01
    try:
        first = bed.popen_cli("upload", "--json")
        second = bed.popen_cli("upload", "--json")
        results = [p.communicate(timeout=120) for p in (first, second)]
    finally:
        moto.app.delays.clear()
    assert first.returncode == 0 and second.returncode == 0, results
    writes = {}
    for request in moto.app.ops(bed.bucket):
        if request["op"] in ("PutObject", "CompleteMultipartUpload"):
            writes[request["key"]] = writes.get(request["key"], 0) + 1
    assert writes == {"race/" + name: 1 for name in [*files, INSTANCE_ID + "-manifest.json"]}
    uploaded = sum(json.loads(out)["uploaded_files"] for out, _unused in results)
    assert uploaded == len(files)
    assert bed.queue_entries() == [] and bed.incoming_entries() == []


def test_64_ranks_into_one_dir_upload_each_file_once(s3bed, moto):
    """The whole chain under load: 64 ranks x 3 calls -> one coalesced upload, every file once."""
    bed = s3bed
    dump = bed.dump_dir()
    prefix = "s3://%s/fleet/dt-1-cid-0" % bed.bucket
    import threading

    def rank(number):
        pid = 2000 + number
        # Like the runtime: each rank writes its own log tail, named after its pid.
        runtime_file = os.path.join(bed.base, "i-0123456789abcdef0-nrt-pid-%d.log" % pid)
        with open(runtime_file, "w") as handle:
            handle.write("tail of rank %d" % number)
        for log_id, argv in enumerate(
            [
                bed.runtime_argv(dump, pid=pid, tid=pid, log_id=0, device=number, core=0, prefix=prefix),
                bed.runtime_argv(dump, pid=pid, tid=pid, log_id=1, device=number, core=1, prefix=prefix),
                bed.runtime_argv(dump, pid=pid, tid=pid, log_id=2, prefix=prefix, runtime_file=runtime_file),
            ]
        ):
            assert bed.run_hook(argv)[0].returncode == 0, log_id

    threads = [threading.Thread(target=rank, args=(n,)) for n in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    local = _files(dump)
    assert len(local) == 192 + 64
    result = json.loads(bed.run_cli("upload", "--json", check=True).stdout)
    assert result["uploaded_files"] == len(local) and result["dumps_done"] == 1
    writes = {}
    for request in moto.app.ops(bed.bucket, "PutObject"):
        writes[request["key"]] = writes.get(request["key"], 0) + 1
    assert set(writes.values()) == {1}
    assert len(writes) == len(local) + 1
    manifest = _manifest(moto, bed.bucket, "fleet/dt-1-cid-0")
    assert len(manifest["files"]) == len(local)


def test_allowed_buckets_refuses_other_buckets(s3bed, moto):
    bed = s3bed
    other = moto.new_bucket()
    bed.write_config({"s3": {"allowed_buckets": [bed.bucket]}})
    dump = bed.make_dump("dt-other", {"a": b"1"})
    bed.enqueue(dump, "s3://%s/x" % other)
    proc = bed.run_cli("upload", "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["entries_refused"] == 1
    assert moto.app.ops(other, "PutObject") == []
    assert os.path.exists(os.path.join(dump, "a"))  # never lose a dump
    assert "not in s3.allowed_buckets" in bed.log_text()


def test_files_still_being_written_wait_for_the_settle_time(s3bed, moto):
    bed = s3bed
    bed.write_config({"uploader": {"settle_seconds": 30}})
    dump = bed.make_dump("dt-settle", {"fresh": b"1"})
    bed.enqueue(dump, "s3://%s/settle" % bed.bucket)
    result = json.loads(bed.run_cli("upload", "--json", check=True).stdout)
    assert result["dumps_deferred"] == 1 and result["uploaded_files"] == 0
    assert len(bed.queue_entries()) == 1  # kept for the next run
    old = time.time() - 60
    os.utime(os.path.join(dump, "fresh"), (old, old))
    result = json.loads(bed.run_cli("upload", "--json", check=True).stdout)
    assert result["uploaded_files"] == 1 and bed.queue_entries() == []


def test_extra_capture_runs_once_before_upload(s3bed, moto):
    bed = s3bed
    bed.write_config(
        {
            "capture": {
                "enabled": True,
                "commands": [
                    {"name": "hello", "argv": ["/bin/echo", "hello from capture"], "timeout_seconds": 5},
                    {"name": "slow", "argv": ["/bin/sleep", "30"], "timeout_seconds": 0.5},
                ],
            }
        }
    )
    dump = bed.dump_dir()
    proc, _unused = bed.run_hook(bed.runtime_argv(dump, prefix="s3://%s/cap" % bed.bucket))
    assert proc.returncode == 0
    started = time.monotonic()
    bed.run_cli("upload", check=True)
    assert time.monotonic() - started < 20
    hello = os.path.join(dump, "%s-extra-hello.txt" % INSTANCE_ID)
    with open(hello) as handle:
        text = handle.read()
    assert "hello from capture" in text and "# exit_code: 0" in text
    with open(os.path.join(dump, "%s-extra-slow.txt" % INSTANCE_ID)) as handle:
        assert "# timed_out: True" in handle.read()
    client = moto.client()
    assert object_sha256(client, bed.bucket, "cap/" + os.path.basename(hello)) == sha256_file(hello)
    # a second hook call into the same dir does not capture again
    bed.run_hook(bed.runtime_argv(dump, log_id=1, prefix="s3://%s/cap" % bed.bucket))
    bed.run_cli("upload", check=True)
    assert len(moto.app.ops(bed.bucket, "PutObject", key="cap/" + os.path.basename(hello))) == 1


def test_default_layout_dump_root_inside_the_state_dir(s3bed, moto):
    """As on a host: state /var/lib/neuron-core-dump, dumps /var/lib/neuron-core-dump/dumps (1733)."""
    bed = s3bed
    root = os.path.join(bed.state, "dumps")
    os.mkdir(root)
    os.chmod(root, 0o1733)
    bed.write_config({"dump_roots": [root, bed.vendor_root]})
    dump = os.path.join(root, "dt-layout-cid-0")
    proc, _unused = bed.run_hook(bed.runtime_argv(dump, prefix="s3://%s/layout" % bed.bucket))
    assert proc.returncode == 0, proc.stderr
    bed.run_cli("upload", check=True)
    assert os.listdir(root) == ["dt-layout-cid-0"]  # no uploader state mixed into the users' root
    assert sorted(os.listdir(bed.state)) == ["dumps", "locks", "status.json", "uploads"]
    assert moto.app.ops(bed.bucket, "PutObject", key="layout/%s-manifest.json" % INSTANCE_ID)
    listing = json.loads(bed.run_cli("list", "--json", check=True).stdout)["dumps"]
    assert [(d["path"], d["status"]) for d in listing] == [(dump, "uploaded")]


def test_uploader_refuses_state_others_can_write(s3bed):
    bed = s3bed
    os.makedirs(os.path.join(bed.state, "uploads"), exist_ok=True)
    os.chmod(os.path.join(bed.state, "uploads"), 0o777)
    proc = bed.run_cli("upload")
    assert proc.returncode == 1
    assert "not open to others" in proc.stderr and "Traceback" not in proc.stderr
