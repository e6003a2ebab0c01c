"""S3 access for the uploader: client, retries, SSE and bucket-owner guard, multipart.

boto3 is imported here and only here, lazily (the hook never imports this module).
Hosts use the OS's python3-boto3, which can be as old as 1.26 (Debian 12), so
newer request parameters (``IfNoneMatch`` on PutObject, ``ChecksumSHA256``) are
detected from the client's service model instead of being assumed.

Credentials: boto3's default chain only (instance profile on a fleet host); nothing
is read from or written to disk here. TLS is verified unless the config explicitly
allows otherwise for an explicit test endpoint (checked in :mod:`config`).

Multipart uploads are our own (create / upload_part / complete) rather than
``s3transfer``: the upload id is saved in the uploader state right after creation,
so a SIGKILLed upload is resumed with ``list_parts`` (each part verified by its
SHA-256, or re-sent) instead of starting over or leaking an incomplete upload.
"""

import base64
import hashlib
import random
import time

READ_CHUNK = 4 * 1024 * 1024
RETRYABLE_CODES = frozenset(
    [
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "503",
        "500",
        "502",
        "504",
    ]
)


class S3Error(Exception):
    """An S3 request failed for good (after retries)."""


def parse_url(url):
    """``s3://bucket/some/prefix`` -> (bucket, key prefix without surrounding slashes)."""
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise ValueError("S3 prefix must start with s3://")
    bucket, _unused, key = url[5:].partition("/")
    from .config import valid_bucket_name

    if not valid_bucket_name(bucket):
        raise ValueError("invalid bucket name %r" % bucket[:80])
    return bucket, key.strip("/")


def join_key(prefix, name):
    return "%s/%s" % (prefix, name) if prefix else name


def b64_sha256(digest):
    return base64.b64encode(digest).decode("ascii")


class Client:
    """A boto3 S3 client plus the settings every call needs."""

    def __init__(self, s3_config, client=None):
        self.config = s3_config
        self.client = client or make_boto_client(s3_config)
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

    # --- retries ----------------------------------------------------------------------------

    def call(self, operation, **params):
        """Call ``operation`` with retries (exponential backoff, full jitter) on transient errors.

        Transient: 5xx/throttling answers, connection trouble, timeouts. Anything else
        (no credentials, access denied, no such bucket, bad parameters) is raised at once.
        """
        from botocore import exceptions as boto_errors

        transient = (
            boto_errors.HTTPClientError,
            boto_errors.IncompleteReadError,
            boto_errors.CredentialRetrievalError,
        )
        method = getattr(self.client, operation)
        params.update(self.owner_params)
        attempts = self.config["max_attempts"]
        for attempt in range(1, attempts + 1):
            try:
                return method(**params)
            except boto_errors.ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
                retryable = code in RETRYABLE_CODES or status >= 500 or status == 429
                if not retryable or attempt == attempts:
                    raise
            except boto_errors.BotoCoreError as exc:
                # refused/reset connections, timeouts, DNS: transient; a bad certificate is not
                retryable = isinstance(exc, transient) or (
                    isinstance(exc, boto_errors.ConnectionError) and not isinstance(exc, boto_errors.SSLError)
                )
                if not retryable:
                    raise
                if attempt == attempts:
                    raise S3Error("%s failed after %d attempts: %s" % (operation, attempts, exc)) from exc
            delay = min(self.config["retry_max_seconds"], self.config["retry_base_seconds"] * (2 ** (attempt - 1)))
            time.sleep(random.uniform(0, delay))
        raise S3Error("%s: no attempt made" % operation)  # unreachable: attempts >= 1

    # --- objects ----------------------------------------------------------------------------

    def put_bytes(self, bucket, key, data, sha256_digest, if_none_match=False, content_type=None):
        params = {"Bucket": bucket, "Key": key, "Body": data}
        params.update(self.sse_params)
        if self.supports("PutObject", "ChecksumSHA256"):
            # the algorithm is named too: some servers store the checksum only then
            params["ChecksumAlgorithm"] = "SHA256"
            params["ChecksumSHA256"] = b64_sha256(sha256_digest)
        if if_none_match and self.supports("PutObject", "IfNoneMatch"):
            params["IfNoneMatch"] = "*"
        if content_type:
            params["ContentType"] = content_type
        return self.call("put_object", **params)

    def head(self, bucket, key):
        """HEAD an object; None when it does not exist."""
        from botocore.exceptions import ClientError

        params = {"Bucket": bucket, "Key": key}
        if self.supports("HeadObject", "ChecksumMode"):
            params["ChecksumMode"] = "ENABLED"
        try:
            return self.call("head_object", **params)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def matches(self, head, size, sha256_digest, data=None):
        """Whether a HEAD answer describes exactly our bytes.

        Size plus the stored SHA-256 checksum; without one, the ETag, which is the
        MD5 of a single-part object unless it is KMS-encrypted (``data`` needed).
        """
        if head is None or head.get("ContentLength") != size:
            return False
        checksum = head.get("ChecksumSHA256")
        if checksum:
            # multipart objects report a checksum of checksums ("...-N"): it will not match
            return checksum == b64_sha256(sha256_digest)
        etag = str(head.get("ETag", "")).strip('"')
        if data is None or "-" in etag or head.get("ServerSideEncryption") == "aws:kms":
            return False
        return etag == hashlib.md5(data).hexdigest()  # the ETag of a plain single-part object is its MD5

    def create_multipart(self, bucket, key):
        params = {"Bucket": bucket, "Key": key}
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
        from botocore.exceptions import ClientError

        parts = {}
        marker = 0
        while True:
            try:
                answer = self.call(
                    "list_parts", Bucket=bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker, MaxParts=1000
                )
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) in ("NoSuchUpload", "404"):
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
        if if_none_match and self.supports("CompleteMultipartUpload", "IfNoneMatch"):
            params["IfNoneMatch"] = "*"
        return self.call("complete_multipart_upload", **params)

    def abort_multipart(self, bucket, key, upload_id):
        import contextlib

        from botocore.exceptions import BotoCoreError, ClientError

        # best effort: a bucket lifecycle rule should clean up stray uploads anyway
        with contextlib.suppress(ClientError, BotoCoreError, S3Error):
            self.call("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)


def is_precondition_failed(exc):
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "412") or status == 412


def describe_error(exc):
    """A short, single-line description of an S3/botocore error."""
    try:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            return "%s: %s" % (error.get("Code", "?"), error.get("Message", "") or str(exc))
    except ImportError:
        pass
    return str(exc) or exc.__class__.__name__


def make_boto_client(s3_config):
    import boto3
    from botocore.config import Config

    options = {
        "connect_timeout": s3_config["connect_timeout_seconds"],
        "read_timeout": s3_config["read_timeout_seconds"],
        # our own retry loop (with jitter and logging) does the retrying
        "retries": {"total_max_attempts": 1, "mode": "standard"},
        "max_pool_connections": s3_config["max_concurrency"] + 4,
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
    import os

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
