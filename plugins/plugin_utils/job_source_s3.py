# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A job's dump in S3, as job_fetch reads it: the manifests directly below the job prefix and their objects.

Needs ``s3:ListBucket`` on the job prefix and ``s3:GetObject`` below it (plus
``kms:Decrypt`` with SSE-KMS). Only keys directly below ``<key prefix>/`` are read
(``Delimiter=/``), so job ``dt-1`` never picks up ``dt-10``'s manifests.
"""

from __future__ import annotations

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import s3_prefix
from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils import job_manifest
from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils.job_fetch import CHUNK, FetchError, Mismatch, Missing

_MISSING = ("NoSuchKey", "404", "NotFound")


def split_prefix(url):
    """(bucket, key prefix) of ``s3://bucket/a/b``; empty components are dropped, as the uploader does."""
    bucket, key = s3_prefix.split(url)
    if bucket is None:
        raise ValueError("prefix must start with s3:// (got %r)" % url)
    found = s3_prefix.bucket_problems(bucket)
    if found:
        raise ValueError("; ".join(found))
    parts = [part for part in key.split("/") if part]
    if not parts:
        raise ValueError("prefix %r names a bucket, not a job prefix" % url)
    if any(part in (".", "..") or "%" in part for part in parts):
        raise ValueError("prefix %r: '.', '..' and runtime %% variables are not a job's key prefix" % url)
    return bucket, "/".join(parts)


def _code(exc):
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class S3Source:
    def __init__(self, client, bucket, key_prefix):
        self.client = client
        self.bucket = bucket
        self.key_prefix = key_prefix

    def describe(self):
        return "s3://%s/%s" % (self.bucket, self.key_prefix)

    def list_manifests(self):
        keys = []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.key_prefix + "/", Delimiter="/"):
                keys += [
                    item["Key"] for item in page.get("Contents") or [] if item["Key"].endswith(job_manifest.SUFFIX)
                ]
        except Exception as exc:
            raise FetchError("cannot list %s: %s" % (self.describe(), exc)) from None
        return sorted(keys)

    def _get(self, key, **extra):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key, **extra)
        except Exception as exc:
            if _code(exc) in _MISSING:
                raise Missing(key) from None
            if _code(exc) == "InvalidRange":
                raise Mismatch("object shorter than the range %s" % extra.get("Range")) from None
            raise

    def read_manifest(self, key, limit):
        answer = self._get(key)
        if answer.get("ContentLength", 0) > limit:
            raise job_manifest.ManifestError("manifest larger than %d bytes" % limit)
        return answer["Body"].read(limit + 1)

    def exists(self, entry):
        try:
            self.client.head_object(Bucket=self.bucket, Key=entry.key)
            return True
        except Exception as exc:
            if _code(exc) in _MISSING:
                return False
            raise

    def chunks(self, entry):
        """The object's bytes; never more than the manifest's size plus one chunk is read."""
        answer = self._get(entry.key)
        length = answer.get("ContentLength")
        yield from _body_chunks(answer["Body"], entry.size if length is None else length, entry.size)

    def range_chunks(self, entry, start, end):
        """Bytes ``start``..``end`` (exclusive) of the object, once its total size is the manifest's."""
        answer = self._get(entry.key, Range="bytes=%d-%d" % (start, end - 1))
        total = _range_total(answer.get("ContentRange"))
        if total is None:
            answer["Body"].close()
            raise Mismatch("the server answered a range request without Content-Range")
        yield from _body_chunks(answer["Body"], total, entry.size)


def _body_chunks(body, total, size):
    """The chunks of a GET's body once the object's ``total`` size is the manifest's ``size``; always closed."""
    try:
        if total != size:
            raise Mismatch("object is %d bytes, the manifest says %d" % (total, size))
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()


def _range_total(content_range):
    """The total of ``bytes a-b/total``, or None."""
    try:
        return int(content_range.rsplit("/", 1)[1])
    except (AttributeError, IndexError, ValueError):
        return None


def _when_required(config_class):
    """``response_checksum_validation="when_required"`` where botocore knows the option (1.36 and later)."""
    try:
        config_class(response_checksum_validation="when_required")
    except TypeError:
        return {}
    return {"response_checksum_validation": "when_required"}


def client(region=None, endpoint_url=None, profile=None, addressing_style="auto", threads=8):
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(profile_name=profile) if profile else boto3.session.Session()
    config = Config(
        s3={"addressing_style": addressing_style},
        # job_fetch runs two pools of ``threads``: whole files, and the ranges of large ones.
        max_pool_connections=max(10, 2 * threads + 2),
        retries={"max_attempts": 5, "mode": "standard"},
        # Every file is checked against its manifest's sha256; S3's own response checksum
        # (x-amz-checksum-mode, on by default since botocore 1.36) would only add a second hash.
        **_when_required(Config),
    )
    return session.client("s3", region_name=region, endpoint_url=endpoint_url, config=config)
