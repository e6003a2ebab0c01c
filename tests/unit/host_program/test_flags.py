"""Flag parsing: by name, any order, unknown/missing/repeated/empty flags, both value forms."""

import pytest
from neuron_core_dump import flags


def test_pairs_in_any_order():
    a = flags.parse(["--pid", "1", "--tid", "2", "--local-output-dir", "/d"])
    b = flags.parse(["--local-output-dir", "/d", "--tid", "2", "--pid", "1"])
    for parsed in (a, b):
        assert (parsed.get("pid"), parsed.get("tid"), parsed.get("local-output-dir")) == ("1", "2", "/d")


def test_equals_form_and_mixed():
    parsed = flags.parse(["--pid=7", "--s3-output-prefix=s3://b/p=q", "--tid", "8"])
    assert parsed.get("pid") == "7"
    assert parsed.get("s3-output-prefix") == "s3://b/p=q"  # only the first '=' splits
    assert parsed.get("tid") == "8"


def test_s3_prefix_shifts_nothing():
    without = flags.parse(["--local-output-dir", "/d", "--cluster-id", "c", "--date-time", "t"])
    with_prefix = flags.parse(
        ["--local-output-dir", "/d", "--s3-output-prefix", "s3://b", "--cluster-id", "c", "--date-time", "t"]
    )
    assert without.get("cluster-id") == with_prefix.get("cluster-id") == "c"
    assert with_prefix.get("s3-output-prefix") == "s3://b"
    assert without.get("s3-output-prefix") is None


def test_unknown_flags_are_kept():
    parsed = flags.parse(["--brand-new-flag", "v", "--pid", "1"])
    assert parsed.get("brand-new-flag") == "v"
    assert parsed.as_record(100) == {"brand-new-flag": "v", "pid": "1"}


def test_missing_value_before_next_flag_or_at_end():
    parsed = flags.parse(["--neff-name", "--pid", "3", "--core-id"])
    assert parsed.values["neff-name"] == [""]
    assert parsed.get("neff-name") is None
    assert parsed.has("neff-name")
    assert parsed.get("pid") == "3"
    assert parsed.values["core-id"] == [""]


def test_empty_string_value():
    parsed = flags.parse(["--neff-name", "", "--pid", "1"])
    assert parsed.values["neff-name"] == [""]
    assert parsed.get("pid") == "1"


def test_repeated_flags_last_non_empty_wins_and_all_are_recorded():
    parsed = flags.parse(["--pid", "1", "--pid", "2", "--pid="])
    assert parsed.get("pid") == "2"
    assert parsed.as_record(100)["pid"] == ["1", "2", ""]


@pytest.mark.parametrize(
    "argv",
    [[], ["positional"], ["-x", "y"], ["--"], ["--=x"], ["-", "--pid"], ["\udcff--pid", "\u2603"]],
)
def test_odd_shapes_never_raise(argv):
    parsed = flags.parse(argv)
    assert isinstance(parsed.as_record(10), dict)


def test_positional_words_are_kept():
    parsed = flags.parse(["stray", "--pid", "1", "extra", "words"])
    assert parsed.get("pid") == "1"
    assert parsed.positional == ["stray", "extra", "words"]


def test_runtime_generated_shape():
    parsed = flags.parse(["--pid", "1", "--runtime-generated", "/tmp/x.log"])
    assert parsed.is_runtime_generated()
    assert not flags.parse(["--pid", "1", "--device-id", "0"]).is_runtime_generated()


def test_huge_values_are_clipped_in_records():
    parsed = flags.parse(["--neff-name", "x" * 100000])
    recorded = parsed.as_record(4096)["neff-name"]
    assert len(recorded) < 4200 and recorded.endswith("chars truncated)")
