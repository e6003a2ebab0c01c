"""The detached worker (hosts without systemd) and request-level checks through botocore event hooks."""

import json
import os
import time

from ncd_bed import ACCOUNT_ID, INSTANCE_ID, S3_ENV


def _wait_for(predicate, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_spawned_worker_uploads_without_making_the_runtime_wait(s3bed, moto):
    bed = s3bed
    bed.write_config({"uploader": {"trigger": "spawn", "cli_path": bed.cli}})
    dump = bed.dump_dir()
    prefix = "s3://%s/spawned" % bed.bucket
    moto.app.delays["PutObject"] = 2.0  # a slow S3: the worker takes seconds, the hook must not
    manifest_key = "spawned/%s-manifest.json" % INSTANCE_ID
    try:
        # capture_output: had the worker kept the hook's stdout/stderr pipes open, this would block
        # the workload's AWS_* variables reach the worker (container credentials); nothing else does
        proc, _unused = bed.run_hook(bed.runtime_argv(dump, prefix=prefix), env=S3_ENV)
        assert proc.returncode == 0, proc.stderr
        # The hook was back before the worker's last upload (the manifest, after the record: at
        # least two delayed PutObjects) completed: it did not wait, however slow the host is.
        assert moto.app.ops(bed.bucket, "PutObject", key=manifest_key) == []
        assert _wait_for(lambda: moto.app.ops(bed.bucket, "PutObject", key=manifest_key))
    finally:
        moto.app.delays.clear()
    assert _wait_for(lambda: bed.queue_entries() == [] and bed.incoming_entries() == [], 10)
    (record,) = [n for n in os.listdir(dump) if "-ncd-" in n]
    assert moto.app.ops(bed.bucket, "PutObject", key="spawned/" + record)


def test_a_running_worker_is_not_started_twice(s3bed, moto):
    import fcntl

    bed = s3bed
    bed.write_config({"uploader": {"trigger": "spawn", "cli_path": bed.cli}})
    lock_path = os.path.join(bed.spool, "worker.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)  # "a worker is running"
    try:
        proc, _unused = bed.run_hook(bed.runtime_argv(bed.dump_dir(), prefix="s3://%s/x" % bed.bucket))
        assert proc.returncode == 0
        time.sleep(1.5)
        assert len(bed.incoming_entries()) == 1  # nobody was spawned to take it
    finally:
        os.close(fd)
    # the worker protocol: a worker that finishes re-checks incoming and takes what arrived meanwhile
    proc = bed.run_cli("upload", "--worker", "--json", check=True)
    assert json.loads(proc.stdout)["dumps_done"] == 1


def test_expected_bucket_owner_is_sent_on_every_call(s3bed, moto):
    """Seen from inside botocore: every S3 call made by the uploader carries ExpectedBucketOwner."""
    from neuron_core_dump import s3, uploader

    bed = s3bed
    bed.write_config(
        {
            "s3": {
                "expected_bucket_owner": ACCOUNT_ID,
                "multipart_threshold_bytes": 5 * 1024 * 1024,
                "multipart_chunk_bytes": 5 * 1024 * 1024,
            }
        }
    )
    config = bed.loaded_config()
    boto_client = s3.make_boto_client(config["s3"])
    seen = []
    boto_client.meta.events.register(
        "before-call.s3", lambda params, model, **_unused: seen.append((model.name, params.get("headers", {})))
    )
    dump = bed.make_dump("dt-owner", {"small": b"s" * 10, "big": os.urandom(6 * 1024 * 1024)})
    bed.enqueue(dump, "s3://%s/owner" % bed.bucket)
    worker = uploader.Uploader(config, client=s3.Client(config["s3"], client=boto_client))
    try:
        result = worker.run()
    finally:
        worker.close()
    assert result.groups_done == 1, result.errors
    operations = {name for name, _unused in seen}
    assert {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"} <= operations
    assert all(headers.get("x-amz-expected-bucket-owner") == ACCOUNT_ID for _unused, headers in seen)


def test_conditional_put_is_used_for_first_uploads_when_supported(s3bed, moto):
    from neuron_core_dump import s3, uploader

    bed = s3bed
    config = bed.loaded_config()
    boto_client = s3.make_boto_client(config["s3"])
    sent = []
    # What goes on the wire: botocore >= 1.35 models IfNoneMatch, older botocore (Debian 12's 1.29, the
    # floor, run by tests/bed/py39-host-program.sh) gets the raw header; the request carries it either way.
    boto_client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_unused: sent.append(dict(request.headers))
    )
    client = s3.Client(config["s3"], client=boto_client)
    # someone else already wrote the key with the same bytes: the upload counts as done, no overwrite
    moto.client().put_object(Bucket=bed.bucket, Key="cond/a", Body=b"same", ChecksumSHA256=_b64sha(b"same"))
    dump = bed.make_dump("dt-cond", {"a": b"same"})
    bed.enqueue(dump, "s3://%s/cond" % bed.bucket)
    worker = uploader.Uploader(config, client=client)
    try:
        result = worker.run()
    finally:
        worker.close()
    assert result.groups_done == 1
    assert sent[0].get("If-None-Match") in ("*", b"*")
    assert len(moto.app.ops(bed.bucket, "PutObject", key="cond/a")) == 1  # only the pre-existing write


def _b64sha(data):
    import base64
    import hashlib

    return base64.b64encode(hashlib.sha256(data).digest()).decode()
