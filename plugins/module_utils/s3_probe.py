# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Can this host write under the configured S3 prefix with its own credentials?

put + head + delete of a tiny object, each bounded by timeouts. boto3 is
imported only here, only when a probe is asked for: the modules themselves need
nothing beyond the standard library.
"""

from __future__ import annotations

import socket
import uuid

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import patterns, s3_prefix

PROBE_DIR = ".neuron-core-dump-probe/"


def probe_key(prefix):
    """(bucket, key) for a probe object next to where dumps of ``prefix`` land."""
    bucket, key = s3_prefix.split(prefix)
    fixed = patterns.literal_prefix(key or "")
    directory = fixed.rpartition("/")[0]
    base = directory + "/" if directory else ""
    return bucket, "%s%s%s-%s" % (base, PROBE_DIR, socket.gethostname() or "host", uuid.uuid4().hex)


def run(prefix, endpoint_url=None, region=None, validate_certs=True, timeout=10):
    """Result dict: ok, bucket, key, steps {put, head, delete}, error."""
    result = {"prefix": prefix, "ok": False, "bucket": None, "key": None, "steps": {}, "error": None}
    try:
        import boto3  # pylint: disable=import-outside-toplevel
        from botocore.config import Config  # pylint: disable=import-outside-toplevel
    except ImportError:
        result["error"] = "boto3 is not installed on the host"
        return result
    bucket, key = probe_key(prefix)
    result["bucket"], result["key"] = bucket, key
    retries = {"total_max_attempts": 2, "mode": "standard"}
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries=retries)
    try:
        client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, verify=validate_certs, config=config)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        result["error"] = "cannot create an S3 client: %s" % exc
        return result
    body = b"neuron_ops.core_dump probe; safe to delete\n"
    for step, call in (
        ("put", lambda: client.put_object(Bucket=bucket, Key=key, Body=body)),
        ("head", lambda: client.head_object(Bucket=bucket, Key=key)),
        ("delete", lambda: client.delete_object(Bucket=bucket, Key=key)),
    ):
        try:
            call()
            result["steps"][step] = "ok"
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # botocore raises many types (credentials, endpoint, client errors); all are a failed probe.
            result["steps"][step] = "failed"
            result["error"] = "%s failed: %s" % (step, exc)
            if step == "put":
                return result
    result["ok"] = all(v == "ok" for v in result["steps"].values())
    return result
