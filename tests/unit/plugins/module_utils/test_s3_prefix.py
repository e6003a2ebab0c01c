from __future__ import annotations

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import s3_prefix


@pytest.mark.parametrize(
    "prefix",
    [
        "s3://my-bucket/%d-%c",
        "s3://my.bucket.name/neuron/host-1/dt-%d-cid-%c/",
        "s3://abc/%d/%c",
        "s3://a1b/prefix=x/%d-%c",
        "s3://" + "a" * 63 + "/%d-%c",
    ],
)
def test_valid_prefixes(prefix):
    assert s3_prefix.problems(prefix) == []


@pytest.mark.parametrize(
    ("prefix", "fragment"),
    [
        ("S3://bucket/%d-%c", "must start with 's3://'"),
        ("s3a://bucket/%d-%c", "must start with 's3://'"),
        ("https://bucket.s3.amazonaws.com/%d-%c", "must start with 's3://'"),
        ("bucket/%d-%c", "must start with 's3://'"),
        ("s3://ab/%d-%c", "3 to 63 characters"),
        ("s3://" + "a" * 64 + "/%d-%c", "3 to 63 characters"),
        ("s3:///%d-%c", "3 to 63 characters"),
        ("s3://My-Bucket/%d-%c", "only lowercase letters, digits, dots and hyphens"),
        ("s3://my_bucket/%d-%c", "only lowercase letters, digits, dots and hyphens"),
        ("s3://-bucket/%d-%c", "start and end with a lowercase letter or digit"),
        ("s3://bucket-/%d-%c", "start and end with a lowercase letter or digit"),
        ("s3://bucket./%d-%c", "start and end with a lowercase letter or digit"),
        ("s3://my..bucket/%d-%c", "two adjacent dots"),
        ("s3://192.168.5.4/%d-%c", "formatted as an IP address"),
        ("s3://xn--bucket/%d-%c", "reserved prefix 'xn--'"),
        ("s3://sthree-bucket/%d-%c", "reserved prefix 'sthree-'"),
        ("s3://amzn-s3-demo-bucket/%d-%c", "reserved prefix 'amzn-s3-demo-'"),
        ("s3://bucket-s3alias/%d-%c", "reserved suffix '-s3alias'"),
        ("s3://bucket--ol-s3/%d-%c", "reserved suffix '--ol-s3'"),
        ("s3://bucket.mrap/%d-%c", "reserved suffix '.mrap'"),
        ("s3://bucket--x-s3/%d-%c", "reserved suffix '--x-s3'"),
        ("s3://bucket--table-s3/%d-%c", "reserved suffix '--table-s3'"),
        ("s3://bucket-%d/%c-%d", "cannot contain runtime % variables"),
        ("s3://bucket/a{b}/%d-%c", "S3 safe characters"),
        ("s3://bucket/a//b/%d-%c", "empty, '.' or '..' path segments"),
        ("s3://bucket/../%d-%c", "empty, '.' or '..' path segments"),
        ("s3://bucket/%d-%c-%q", "'%q' is not a runtime variable"),
        ("s3://bucket/static/", "must contain %d and %c"),
        ("s3://bucket/" + "k" * 800 + "/%d-%c", "S3 limit of 1024"),
    ],
)
def test_each_rule_is_reported(prefix, fragment):
    found = s3_prefix.problems(prefix)
    assert any(fragment in message for message in found), found


def test_split():
    assert s3_prefix.split("s3://b/k/x") == ("b", "k/x")
    assert s3_prefix.split("s3://b") == ("b", "")
    assert s3_prefix.split("gs://b/k") == (None, None)


def test_uniqueness_can_be_waived():
    assert s3_prefix.problems("s3://bucket/static/", require_unique=False) == []
