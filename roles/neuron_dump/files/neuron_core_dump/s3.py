"""S3 access for the uploader: client, retries, SSE and bucket-owner guard, multipart.

boto3 is imported here and only here, lazily (the hook never imports this module).
Hosts use the OS's python3-boto3, which can be as old as 1.26 (Debian 12), so
newer request parameters (``IfNoneMatch`` on PutObject, ``ChecksumSHA256``) are
detected from the client's service model instead of being assumed; the conditional
headers (``If-None-Match``, ``If-Match``) are then sent as raw headers, so the
no-overwrite guarantee does not depend on the botocore version.

Credentials: boto3's default chain only (instance profile on a fleet host); nothing
is read from or written to disk here. TLS is verified unless the config explicitly
allows otherwise for an explicit test endpoint (checked in :mod:`config`).

Retries are botocore's ``standard`` mode (exponential backoff with jitter, transient
errors and throttling only); :func:`error_code` names what failed.

Every object carries ``x-amz-meta-ncd-*`` metadata (owner uid and user, host, dump
dir, SHA-256 of the content), so a collision can name both owners and an existing
object with our bytes is recognised without downloading it.

Multipart uploads are our own (create / upload_part / complete) rather than
``s3transfer``: the upload id is saved in the uploader state right after creation,
so a SIGKILLed upload is resumed with ``list_parts`` (each part verified by its
SHA-256, or re-sent) instead of starting over or leaking an incomplete upload.
"""

import base64
import hashlib
import os
import threading

from . import keys
from .config import split_s3_url

READ_CHUNK = 4 * 1024 * 1024
# answers that mean "this dump can never be uploaded there" rather than "the uploader is broken"
REFUSAL_CODES = frozenset(["NoSuchBucket", "InvalidBucketName", "PermanentRedirect", "AuthorizationHeaderMalformed"])
NOT_FOUND_CODES = frozenset(["404", "NoSuchKey", "NotFound"])
NO_UPLOAD_CODES = frozenset(["NoSuchUpload", "404"])
METADATA_PREFIX = "ncd-"


class S3Error(Exception):
    """An S3 request failed for good (after retries)."""


def parse_url(url):
    """``s3://bucket/some/prefix`` -> (bucket, normalised key prefix); see :func:`config.split_s3_url`."""
    return split_s3_url(url)


def join_key(prefix, name):
    return "%s/%s" % (prefix, name) if prefix else name


def b64_sha256(digest):
    return base64.b64encode(digest).decode("ascii")


# Conditional headers for botocore too old to model them (Debian 12: botocore 1.29, without
# IfNoneMatch/IfMatch on PutObject and CompleteMultipartUpload): set for the duration of one
# call in this thread, added to the request before it is signed (so retries carry them too).
_EXTRA_HEADERS = threading.local()


def _add_extra_headers(request, **_kwargs):
    for name, value in (getattr(_EXTRA_HEADERS, "value", None) or {}).items():
        request.headers[name] = value


class Client:
    """A boto3 S3 client plus the settings every call needs."""

    def __init__(self, s3_config, client=None):
        self.config = s3_config
        self.client = client or make_boto_client(s3_config)
        events = getattr(self.client.meta, "events", None)  # None only for call-surface stand-ins in unit tests
        if events is not None:
            events.register("before-sign.s3", _add_extra_headers)
        self._supports_cache = {}
        self.sse_params = {}
        if s3_config["sse"] == "AES256":
            self.sse_params["ServerSideEncryption"] = "AES256"
        elif s3_config["sse"] == "aws:kms":
            self.sse_params["ServerSideEncryption"] = "aws:kms"
            if s3_config["kms_key_id"]:
                self.sse_params["SSEKMSKeyId"] = s3_config["kms_key_id"]
        self.owner_params = {}
        if s3_config["expected_bucket_owner"]:
            self.owner_params["ExpectedBucketOwner"] = s3_config["expected_bucket_owner"]

    # --- feature detection ------------------------------------------------------------------

    def supports(self, operation, parameter):
        key = (operation, parameter)
        if key not in self._supports_cache:
            try:
                shape = self.client.meta.service_model.operation_model(operation).input_shape
                self._supports_cache[key] = parameter in shape.members
            except Exception:  # an unknown operation in an old model simply is not supported
                self._supports_cache[key] = False
        return self._supports_cache[key]

    def call(self, operation, headers=None, **params):
        """Call ``operation`` (retried by botocore's standard mode) with the bucket-owner guard.

        ``headers``: extra HTTP headers for this call only (see ``_EXTRA_HEADERS``).
        """
        params.update(self.owner_params)
        _EXTRA_HEADERS.value = headers
        try:
            return getattr(self.client, operation)(**params)
        finally:
            _EXTRA_HEADERS.value = None

    def _condition(self, operation, params, headers, parameter, header, value):
        """Send a condition as a modelled parameter where botocore knows it, else as a raw header."""
        if self.supports(operation, parameter):
            params[parameter] = value
        else:
            headers[header] = value

    # --- objects ----------------------------------------------------------------------------

    def put_bytes(
        self, bucket, key, data, sha256_digest, if_none_match=False, content_type=None, metadata=None, if_match=None
    ):
        params = {"Bucket": bucket, "Key": key, "Body": data}
        if metadata:
            params["Metadata"] = metadata
        params.update(self.sse_params)
        if self.supports("PutObject", "ChecksumSHA256"):
            # the algorithm is named too: some servers store the checksum only then
            params["ChecksumAlgorithm"] = "SHA256"
            params["ChecksumSHA256"] = b64_sha256(sha256_digest)
        headers = {}
        if if_none_match:
            self._condition("PutObject", params, headers, "IfNoneMatch", "If-None-Match", "*")
        if if_match:
            self._condition("PutObject", params, headers, "IfMatch", "If-Match", if_match)
        if content_type:
            params["ContentType"] = content_type
        return self.call("put_object", headers=headers, **params)

    def head(self, bucket, key):
        """HEAD an object; None when it does not exist."""
        params = {"Bucket": bucket, "Key": key}
        if self.supports("HeadObject", "ChecksumMode"):
            params["ChecksumMode"] = "ENABLED"
        try:
            return self.call("head_object", **params)
        except Exception as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise

    def probe(self, bucket):
        """One cheap request (HeadBucket, no retries beyond botocore's): raises when S3 is unreachable."""
        self.call("head_bucket", Bucket=bucket)

    def get_bytes(self, bucket, key, limit):
        """The object's bytes (at most ``limit``) and its ETag; None when it does not exist."""
        try:
            answer = self.call("get_object", Bucket=bucket, Key=key, Range="bytes=0-%d" % (limit - 1))
        except Exception as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise
        return answer["Body"].read(), answer.get("ETag")

    def matches(self, head, size, sha256_digest, data=None):
        """Whether a HEAD answer describes exactly our bytes.

        Size plus the stored SHA-256 checksum; without one, the ETag, which is the
        MD5 of a single-part object unless it is KMS-encrypted (``data`` needed).
        """
        if head is None or head.get("ContentLength") != size:
            return False
        ours = (head.get("Metadata") or {}).get(METADATA_PREFIX + "sha256")
        if ours:
            return ours == sha256_digest.hex()
        checksum = head.get("ChecksumSHA256")
        if checksum:
            # multipart objects report a checksum of checksums ("...-N"): it will not match
            return checksum == b64_sha256(sha256_digest)
        etag = str(head.get("ETag", "")).strip('"')
        if data is None or "-" in etag or head.get("ServerSideEncryption") == "aws:kms":
            return False
        return etag == hashlib.md5(data).hexdigest()  # the ETag of a plain single-part object is its MD5

    def create_multipart(self, bucket, key, metadata=None):
        params = {"Bucket": bucket, "Key": key}
        if metadata:
            params["Metadata"] = metadata
        params.update(self.sse_params)
        if self.supports("CreateMultipartUpload", "ChecksumAlgorithm"):
            params["ChecksumAlgorithm"] = "SHA256"
        return self.call("create_multipart_upload", **params)["UploadId"]

    def upload_part(self, bucket, key, upload_id, number, data, sha256_digest):
        params = {"Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": number, "Body": data}
        part = {"PartNumber": number}
        if self.supports("UploadPart", "ChecksumSHA256"):
            params["ChecksumAlgorithm"] = "SHA256"
            params["ChecksumSHA256"] = b64_sha256(sha256_digest)
            part["ChecksumSHA256"] = params["ChecksumSHA256"]
        part["ETag"] = self.call("upload_part", **params)["ETag"]
        return part

    def list_parts(self, bucket, key, upload_id):
        """{part number: part dict} of an upload; None when the upload no longer exists."""
        parts = {}
        marker = 0
        while True:
            try:
                answer = self.call(
                    "list_parts", Bucket=bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker, MaxParts=1000
                )
            except Exception as exc:
                if error_code(exc) in NO_UPLOAD_CODES:
                    return None
                raise
            for part in answer.get("Parts", []):
                parts[part["PartNumber"]] = part
            if not answer.get("IsTruncated"):
                return parts
            marker = answer.get("NextPartNumberMarker", marker + 1000)

    def complete_multipart(self, bucket, key, upload_id, parts, if_none_match=False):
        params = {
            "Bucket": bucket,
            "Key": key,
            "UploadId": upload_id,
            "MultipartUpload": {"Parts": sorted(parts, key=lambda p: p["PartNumber"])},
        }
        headers = {}
        if if_none_match:
            self._condition("CompleteMultipartUpload", params, headers, "IfNoneMatch", "If-None-Match", "*")
        return self.call("complete_multipart_upload", headers=headers, **params)

    def abort_multipart(self, bucket, key, upload_id):
        # best effort: a bucket lifecycle rule should clean up stray uploads anyway
        try:
            self.call("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception as exc:
            if not is_remote_failure(exc):
                raise


def error_code(exc):
    """S3's error code of a ClientError ("NoSuchBucket", "412", ...), else None (any other exception).

    Read from the error's ``response``, so callers need not import botocore to classify errors.
    """
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    return str(response.get("Error", {}).get("Code", "")) or None


def http_status(exc):
    response = getattr(exc, "response", None)
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(response, dict) else None


def is_precondition_failed(exc):
    return error_code(exc) in ("PreconditionFailed", "412") or http_status(exc) == 412


def is_refusal(exc):
    """S3 says this destination can never work (the bucket does not exist, ...): not an outage."""
    return error_code(exc) in REFUSAL_CODES


def is_remote_failure(exc):
    """An S3/botocore failure (as opposed to a local file problem): any of botocore's exceptions
    (``ClientError``, ``BotoCoreError`` and their subclasses) or our S3Error."""
    return isinstance(exc, S3Error) or type(exc).__module__.partition(".")[0] == "botocore"


def owner_metadata(uid, user, host, dump_dir, sha256_hex=None):
    """``x-amz-meta-ncd-*`` values (ASCII only, as S3 requires)."""

    def ascii_text(value):
        return keys.display(value).encode("ascii", "backslashreplace").decode("ascii")[:512]

    metadata = {
        METADATA_PREFIX + "owner-uid": str(uid),
        METADATA_PREFIX + "owner": ascii_text(user),
        METADATA_PREFIX + "host": ascii_text(host),
        METADATA_PREFIX + "dump-dir": ascii_text(dump_dir),
    }
    if sha256_hex:
        metadata[METADATA_PREFIX + "sha256"] = sha256_hex
    return metadata


def describe_owner(head):
    """'uid 1000 (alice) on i-0123 from /dumps/x' from an object's metadata, or 'unknown owner'."""
    metadata = (head or {}).get("Metadata") or {}
    uid = metadata.get(METADATA_PREFIX + "owner-uid")
    if uid is None:
        return "an unknown owner (object not written by neuron-core-dump)"
    return "uid %s (%s) on %s from %s" % (
        uid,
        metadata.get(METADATA_PREFIX + "owner", "?"),
        metadata.get(METADATA_PREFIX + "host", "?"),
        metadata.get(METADATA_PREFIX + "dump-dir", "?"),
    )


def describe_error(exc):
    """A short, single-line description of an S3/botocore error (never raises)."""
    try:
        response = getattr(exc, "response", None)
        if isinstance(response, dict) and isinstance(response.get("Error"), dict):
            error = response["Error"]
            return "%s: %s" % (error.get("Code", "?"), error.get("Message", "") or str(exc))
        return str(exc) or exc.__class__.__name__
    except Exception:  # a broken exception's __str__: describing an error must not raise another
        return repr(exc)


def make_boto_client(s3_config, connections=None):
    # not at the top: boto3 takes ~0.3 s to import and is absent where the OS has no python3-boto3;
    # an uploader run that finds nothing to upload (or only local dumps) never needs it
    import boto3
    from botocore.config import Config

    options = {
        "connect_timeout": s3_config["connect_timeout_seconds"],
        "read_timeout": s3_config["read_timeout_seconds"],
        # botocore's standard mode: transient errors and throttling, exponential backoff with jitter
        "retries": {"total_max_attempts": s3_config["max_attempts"], "mode": "standard"},
        "max_pool_connections": connections or s3_config["max_concurrency"] + 4,
        "s3": {"addressing_style": s3_config["addressing_style"]},
    }
    if s3_config["region"]:
        options["region_name"] = s3_config["region"]
    kwargs = {"config": Config(**options)}
    if s3_config["endpoint_url"]:
        kwargs["endpoint_url"] = s3_config["endpoint_url"]
    if not s3_config["verify_tls"]:
        kwargs["verify"] = False
    if s3_config["region"]:
        kwargs["region_name"] = s3_config["region"]
    session = boto3.session.Session()
    if not kwargs.get("region_name") and not session.region_name:
        kwargs["region_name"] = "us-east-1"  # a region is required for signing; the endpoint may redirect
    return session.client("s3", **kwargs)


def sha256_of_fd(fd, size):
    """SHA-256 of the first ``size`` bytes of ``fd`` (read with pread: the offset is untouched)."""
    digest = hashlib.sha256()
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(READ_CHUNK, size - offset), offset)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
    if offset != size:
        raise OSError("file shrank while hashing (%d of %d bytes)" % (offset, size))
    return digest
