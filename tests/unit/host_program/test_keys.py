"""The key encoding and report escaping of file names (keys.py): deterministic, collision-free, bounded."""

import itertools

import pytest
from neuron_core_dump import config, keys


def test_plain_names_keep_their_key():
    name = "i-0123456789abcdef0-nd0-nc0-pid-7-tid-7-lid-0"
    assert keys.object_key("neuron/dt-1-cid-0", name) == "neuron/dt-1-cid-0/" + name
    assert keys.object_key("", name) == name


def test_bytes_outside_the_safe_set_are_percent_encoded():
    assert keys.object_key("p", b"bad-\xff\xfe.bin") == "p/bad-%FF%FE.bin"
    assert keys.object_key("p", "bad-\udcff\udcfe.bin") == "p/bad-%FF%FE.bin"  # listdir's surrogateescape form
    assert keys.object_key("p", "a b/%") == "p/a%20b%2F%25"


def test_encoding_is_injective_on_a_sample():
    alphabet = [b"a", b"%", b"2", b"5", b"\xff", b" ", b"~"]
    names = [b"".join(p) for n in range(1, 4) for p in itertools.product(alphabet, repeat=n)]
    encoded = [keys.object_key("p", n) for n in names]
    assert len(set(encoded)) == len(names)
    assert not any(keys.MARKER in k for k in encoded)  # the marker is reserved for our suffixes


def test_long_keys_are_cut_and_hashed_within_the_limit():
    first = keys.object_key("p" * 700, b"\xe9" * 200)
    second = keys.object_key("p" * 700, b"\xe9" * 199 + b"\xea")
    assert len(first) <= 1024 and len(second) <= 1024 and first != second
    assert "%~n" in first and first.rsplit("%~n", 1)[0][-3:].startswith("%")  # never cut inside %XX
    with pytest.raises(keys.KeyTooLong):
        keys.object_key("p" * 1000, "x" * 100)


def test_collision_suffix_is_distinct_from_every_plain_key():
    suffix = keys.collision_suffix("ab" * 32)
    assert suffix == "%~c" + "ab" * 8
    assert keys.object_key("p", "x", suffix) == "p/x%~c" + "ab" * 8


def test_display_and_describe_are_strict_utf8():
    assert keys.display("bad-\udcff.bin") == "bad-\\xff.bin"
    assert keys.display("ctl-\x01\n") == "ctl-\\x01\\x0a"
    assert keys.describe("plain") == {"name": "plain"}
    described = keys.describe(b"bad-\xff")
    assert described["name"] == "bad-\\xff" and described["name_b64"] == "YmFkLf8="
    cleaned = keys.clean({"k\udcff": ["v\udcfe", 1, None]})
    assert cleaned == {"k\\xff": ["v\\xfe", 1, None]}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://b-1/a//b/", ("b-1", "a/b")),
        ("s3://b-1", ("b-1", "")),
    ],
)
def test_s3_urls_are_normalised(url, expected):
    assert config.split_s3_url(url) == expected


@pytest.mark.parametrize("url", ["s3://b-1/a/../b", "s3://b-1/./a", "s3://B/x", "http://b-1/x", "s3://b-1/a\x01"])
def test_bad_s3_urls_are_refused(url):
    with pytest.raises(ValueError):
        config.split_s3_url(url)


def test_allowed_prefixes_compare_whole_components():
    allowed = [("b-1", "neuron"), ("b-2", "")]
    assert config.prefix_allowed("b-1", "neuron", allowed)
    assert config.prefix_allowed("b-1", "neuron/dt-1", allowed)
    assert not config.prefix_allowed("b-1", "neuronX/dt-1", allowed)
    assert not config.prefix_allowed("b-3", "neuron", allowed)
    assert config.prefix_allowed("b-2", "anything", allowed)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"s3": {"allowed_prefixes": ["s3://b-1/../x"]}}, "s3.allowed_prefixes[0]"),
        ({"s3": {"allowed_prefixes": "s3://b-1"}}, "s3.allowed_prefixes"),
        ({"uploader": {"allowed_uids": [-1]}}, "uploader.allowed_uids[0]"),
        ({"uploader": {"allowed_uids": [True]}}, "uploader.allowed_uids[0]"),
        ({"uploader": {"allowed_groups": ["a b"]}}, "uploader.allowed_groups[0]"),
        ({"uploader": {"max_parallel_dumps": 0}}, "uploader.max_parallel_dumps"),
        ({"uploader": {"retry_max_interval_seconds": 61}}, "uploader.retry_max_interval_seconds"),
        ({"capture": {"readable_by_owner": "yes"}}, "capture.readable_by_owner"),
    ],
)
def test_new_keys_are_validated(changes, key):
    with pytest.raises(config.ConfigError) as info:
        config.validate(changes)
    assert info.value.key == key


def test_new_keys_defaults_and_normalisation():
    loaded = config.validate({"s3": {"allowed_prefixes": ["s3://b-1/a//b/"]}, "uploader": {"allowed_groups": [5, "x"]}})
    assert loaded["s3"]["allowed_prefixes"] == ["s3://b-1/a/b"]
    assert loaded["uploader"]["allowed_groups"] == [5, "x"]
    defaults = config.defaults()
    assert defaults["capture"]["readable_by_owner"] is False
    assert defaults["uploader"]["retry_max_interval_seconds"] <= 60
