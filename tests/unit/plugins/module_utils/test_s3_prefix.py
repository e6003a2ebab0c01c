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


@pytest.mark.parametrize(
    ("prefix", "static"),
    [
        ("s3://b/neuron/dt-%d-cid-%c", "s3://b/neuron/"),  # cut back to the last '/'
        ("s3://b/neuron/%d-%c", "s3://b/neuron/"),  # the variable is at a boundary
        ("s3://b/a/b/c-%d/%c", "s3://b/a/b/"),
        ("s3://b/dt-%d-cid-%c", "s3://b/"),  # nothing fixed in the key: the bucket
        ("s3://b/%d", "s3://b/"),
        ("s3://b/fixed/key", "s3://b/fixed/key"),  # no variable: the whole key
        ("s3://b", "s3://b/"),
        ("https://b/x", None),
    ],
)
def test_static_prefix(prefix, static):
    assert s3_prefix.static_prefix(prefix) == static


@pytest.mark.parametrize(
    ("prefix", "buckets", "prefixes", "allowed"),
    [
        ("s3://b/neuron/dt-%d-cid-%c", [], [], True),
        ("s3://b/neuron/dt-%d-cid-%c", ["b"], [], True),
        ("s3://other/neuron/dt-%d", ["b"], [], False),
        ("s3://b/neuron/dt-%d-cid-%c", [], ["s3://b/neuron/"], True),
        ("s3://b/neuron/dt-%d-cid-%c", [], ["s3://b/neuron/dt-"], True),  # the literal part covers it
        ("s3://b/neuron/%d", [], ["s3://b/neuron/dt-"], False),  # %d could expand to anything
        ("s3://b/other/%d-%c", [], ["s3://b/neuron/"], False),
        ("s3://b2/neuron/%d-%c", [], ["s3://b/neuron/"], False),
    ],
)
def test_allowed_by_the_uploader_lists(prefix, buckets, prefixes, allowed):
    assert s3_prefix.allowed_by(prefix, buckets, prefixes) is allowed


def test_the_role_default_allows_every_expansion_of_its_prefix():
    """The role's default allow-list (static_prefix of the configured prefix) admits that prefix."""
    for prefix in ("s3://b/neuron/dt-%d-cid-%c", "s3://b/%d-%c", "s3://b/x/y"):
        assert s3_prefix.allowed_by(prefix, ["b"], [s3_prefix.static_prefix(prefix)])


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("s3://bucket/neuron/", None),
        ("s3://bucket/", None),
        ("s3://bucket", None),
        ("gs://bucket/x/", "must start with 's3://'"),
        ("s3://b/x/", "must be 3 to 63 characters"),
        ("s3://bucket/%d/", "must be literal"),
        ("s3://bucket/a b/", "may contain only letters"),
    ],
)
def test_literal_url_problems(url, fragment):
    found = s3_prefix.literal_url_problems(url)
    if fragment is None:
        assert found == []
    else:
        assert any(fragment in message for message in found), found
