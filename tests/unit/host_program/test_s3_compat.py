"""Old botocore (Debian 12 ships 1.26): newer parameters are used only when the model has them.

A stand-in for the boto3 client's *model and call surface* only: it records the keyword
arguments the uploader would send, so the test can run without an old botocore installed.
The real request behaviour is tested against moto in the integration tests.
"""

import hashlib

import pytest
from neuron_core_dump import config, s3


class _Shape:
    def __init__(self, members):
        self.members = dict.fromkeys(members)


class _Model:
    def __init__(self, operations):
        self.operations = operations

    def operation_model(self, name):
        if name not in self.operations:
            raise KeyError(name)
        return type("Op", (), {"input_shape": _Shape(self.operations[name])})()


class RecordingClient:
    def __init__(self, operations):
        self.meta = type("Meta", (), {"service_model": _Model(operations)})()
        self.calls = []

    def put_object(self, **params):
        self.calls.append(("put_object", params))
        return {"ETag": '"x"'}

    def upload_part(self, **params):
        self.calls.append(("upload_part", params))
        return {"ETag": '"p"'}


OLD_MODEL = {  # botocore 1.26-era members (no IfNoneMatch)
    "PutObject": ["Bucket", "Key", "Body", "ServerSideEncryption", "SSEKMSKeyId", "ExpectedBucketOwner",
                  "ChecksumAlgorithm", "ChecksumSHA256"],
    "UploadPart": ["Bucket", "Key", "Body", "UploadId", "PartNumber", "ChecksumAlgorithm", "ChecksumSHA256"],
}  # fmt: skip
ANCIENT_MODEL = {"PutObject": ["Bucket", "Key", "Body", "ServerSideEncryption"], "UploadPart": ["Bucket", "Key"]}


def _client(model, **s3_settings):
    settings = config.validate({"s3": s3_settings})["s3"]
    return s3.Client(settings, client=RecordingClient(model))


def test_if_none_match_is_dropped_when_the_model_lacks_it():
    client = _client(OLD_MODEL, expected_bucket_owner="123456789012")
    client.put_bytes("b", "k", b"data", hashlib.sha256(b"data").digest(), if_none_match=True)
    ((_unused, params),) = client.client.calls
    assert "IfNoneMatch" not in params
    assert params["ChecksumSHA256"] == s3.b64_sha256(hashlib.sha256(b"data").digest())
    assert params["ExpectedBucketOwner"] == "123456789012"
    assert params["ServerSideEncryption"] == "AES256"


def test_checksums_are_dropped_on_an_ancient_model():
    client = _client(ANCIENT_MODEL)
    client.put_bytes("b", "k", b"data", hashlib.sha256(b"data").digest())
    part = client.upload_part("b", "k", "u", 1, b"data", hashlib.sha256(b"data").digest())
    put_params = client.client.calls[0][1]
    assert "ChecksumSHA256" not in put_params and "ChecksumAlgorithm" not in put_params
    assert part == {"PartNumber": 1, "ETag": '"p"'}


def test_kms_parameters():
    client = _client(OLD_MODEL, sse="aws:kms", kms_key_id="alias/k")
    client.put_bytes("b", "k", b"", hashlib.sha256(b"").digest())
    params = client.client.calls[0][1]
    assert params["ServerSideEncryption"] == "aws:kms" and params["SSEKMSKeyId"] == "alias/k"


def test_no_sse():
    client = _client(OLD_MODEL, sse="none")
    client.put_bytes("b", "k", b"", hashlib.sha256(b"").digest())
    assert "ServerSideEncryption" not in client.client.calls[0][1]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/a/b/", ("bucket", "a/b")),
        ("s3://my.bucket-1//x", ("my.bucket-1", "x")),
    ],
)
def test_parse_url(url, expected):
    assert s3.parse_url(url) == expected


@pytest.mark.parametrize("url", ["bucket/x", "s3://", "s3://UPPER/x", "s3://ab/x", "https://bucket/x"])
def test_parse_url_rejects(url):
    with pytest.raises(ValueError):
        s3.parse_url(url)


def test_join_key():
    assert s3.join_key("", "f") == "f"
    assert s3.join_key("a/b", "f") == "a/b/f"
