from __future__ import annotations

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import s3_probe

moto = pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto.mock_aws():
        yield boto3.client("s3", region_name="us-east-1")


def test_probe_key_sits_next_to_the_dumps():
    bucket, key = s3_probe.probe_key("s3://bucket/fleet/host1/dt-%d-cid-%c")
    assert bucket == "bucket" and key.startswith("fleet/host1/.neuron-core-dump-probe/")
    assert s3_probe.probe_key("s3://bucket/%d-%c")[1].startswith(".neuron-core-dump-probe/")


def test_probe_succeeds_and_cleans_up(aws):
    aws.create_bucket(Bucket="dumps")
    result = s3_probe.run("s3://dumps/x/%d-%c", region="us-east-1")
    assert result["ok"] and result["steps"] == {"put": "ok", "head": "ok", "delete": "ok"}
    assert aws.list_objects_v2(Bucket="dumps").get("KeyCount", 0) == 0


def test_probe_reports_failure(aws):
    result = s3_probe.run("s3://missing-bucket/%d-%c", region="us-east-1")
    assert not result["ok"] and result["steps"] == {"put": "failed"}
    assert "put failed" in result["error"] and "NoSuchBucket" in result["error"]


def test_probe_without_boto3(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "boto3":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    result = s3_probe.run("s3://b/%d-%c")
    assert not result["ok"] and result["error"] == "boto3 is not installed on the host"
