# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate ``NEURON_RT_S3_CORE_DUMP_PREFIX`` values: ``s3://bucket/key-prefix``.

Bucket rules are the S3 general-purpose bucket naming rules (``bucket_name``, shared with
the host program); the key part may use the runtime ``%`` variables (checked in ``patterns``).
"""

from __future__ import annotations

import re

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import bucket_name, contract, patterns

SCHEME = "s3://"

# Characters AWS documents as safe in object keys, plus '/' and '%' (the
# runtime variables, validated separately) and '=' for key=value partitions.
_KEY_CHARS = re.compile(r"^[A-Za-z0-9!_.*()/=%-]*$")


def split(prefix):
    """(bucket, key) of an ``s3://`` URL, or (None, None) when the scheme is wrong."""
    if not prefix.startswith(SCHEME):
        return None, None
    rest = prefix[len(SCHEME) :]
    bucket, _sep, key = rest.partition("/")
    return bucket, key


def static_prefix(prefix):
    """``s3://bucket/key`` fixed whatever the variables expand to: what root allows by default.

    The key is cut at the first ``%`` variable and back to the last ``/`` before it, so the
    allowed prefix is a whole "directory": ``s3://b/neuron/dt-%d-cid-%c`` -> ``s3://b/neuron/``,
    ``s3://b/neuron/%d`` -> ``s3://b/neuron/``, ``s3://b/dt-%d`` -> ``s3://b/`` (the bucket). A
    key without variables is kept whole. None when ``prefix`` is not an ``s3://`` URL.
    """
    bucket, key = split(prefix)
    if bucket is None:
        return None
    static = patterns.literal_prefix(key)
    if static != key:
        static = static[: static.rfind("/") + 1]
    return SCHEME + bucket + "/" + static


def allowed_by(prefix, allowed_buckets, allowed_prefixes):
    """Whether every expansion of ``prefix`` passes the uploader's allow-lists (empty = any).

    Every expansion begins with the key's literal part, so checking that is enough.
    """
    bucket, key = split(prefix)
    if bucket is None:
        return False
    if allowed_buckets and bucket not in allowed_buckets:
        return False
    literal = SCHEME + bucket + "/" + patterns.literal_prefix(key)
    return not allowed_prefixes or any(literal.startswith(allowed) for allowed in allowed_prefixes)


def literal_url_problems(url):
    """Messages for every rule an allow-list entry ``s3://bucket/literal-key-prefix`` breaks."""
    bucket, key = split(url)
    if bucket is None:
        return ["must start with %r" % SCHEME]
    found = bucket_problems(bucket)
    if "%" in key:
        found.append("the key part must be literal: no runtime % variables in an allow-list")
    elif not _KEY_CHARS.match(key):
        found.append("key part %r may contain only letters, digits, '/', and ! _ . * ( ) = -" % key)
    return found


def bucket_problems(bucket):
    """Messages for every bucket naming rule ``bucket`` breaks (module_utils/bucket_name.py)."""
    return bucket_name.problems(bucket)


def problems(prefix, require_unique=True):
    """Messages for every rule ``prefix`` breaks (scheme, bucket, key, variables, length)."""
    bucket, key = split(prefix)
    if bucket is None:
        return [
            "must start with %r (got %r); other schemes (s3a://, https://, S3://) are not understood" % (SCHEME, prefix)
        ]
    found = bucket_problems(bucket)
    if not _KEY_CHARS.match(key):
        bad = sorted({ch for ch in key if not _KEY_CHARS.match(ch)})
        found.append(
            "key part %r contains %s; allowed are letters, digits, '/', and ! _ . * ( ) = - (S3 safe characters)"
            % (key, " ".join(repr(ch) for ch in bad))
        )
    segments = key.split("/")
    # A trailing '/' is fine; empty, '.' and '..' segments in the middle are not.
    inner = segments[:-1] if segments and segments[-1] == "" else segments
    if key and any(seg in ("", ".", "..") for seg in inner):
        found.append("key part %r must not contain empty, '.' or '..' path segments" % key)
    found.extend(p.message for p in patterns.problems(key, require_unique=require_unique))
    worst = patterns.max_expanded_length(key) + 1 + contract.FILENAME_CAP
    if worst > contract.S3_KEY_CAP:
        found.append(
            "key part is too long: expanded, plus '/' and a %d-byte file name, it can reach %d bytes, over the "
            "S3 limit of %d" % (contract.FILENAME_CAP, worst, contract.S3_KEY_CAP)
        )
    return found
