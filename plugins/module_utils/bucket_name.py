# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3 general-purpose bucket naming rules: one implementation for the modules and the host program.

The neuron_dump role installs this very file into the host package (``__neuron_dump_shared_files``),
with patterns.py. No imports at all: the hook validates its configuration on every call.
"""

_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")
# Prefixes and suffixes S3 reserves for other features (access points, S3 on
# Outposts, Object Lambda, directory and table buckets, documentation).
RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def _ip_like(name):
    parts = name.split(".")
    return len(parts) == 4 and all(part.isdigit() and part.isascii() and 1 <= len(part) <= 3 for part in parts)


def problems(bucket):
    """Messages for every bucket naming rule ``bucket`` breaks (empty when it is a valid name)."""
    found = []
    if not 3 <= len(bucket) <= 63:
        found.append("bucket name %r must be 3 to 63 characters long" % bucket)
    if "%" in bucket:
        found.append("bucket name %r cannot contain runtime %% variables; use them in the key part" % bucket)
    elif bucket and not _CHARS.issuperset(bucket):
        found.append("bucket name %r may contain only lowercase letters, digits, dots and hyphens" % bucket)
    if bucket and not (bucket[0].isalnum() and bucket[-1].isalnum()):
        found.append("bucket name %r must start and end with a lowercase letter or digit" % bucket)
    if ".." in bucket:
        found.append("bucket name %r must not contain two adjacent dots" % bucket)
    if _ip_like(bucket):
        found.append("bucket name %r must not be formatted as an IP address" % bucket)
    for reserved in RESERVED_PREFIXES:
        if bucket.startswith(reserved):
            found.append("bucket name %r must not start with the reserved prefix %r" % (bucket, reserved))
    for reserved in RESERVED_SUFFIXES:
        if bucket.endswith(reserved):
            found.append("bucket name %r must not end with the reserved suffix %r" % (bucket, reserved))
    return found
