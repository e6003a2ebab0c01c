"""Record names: unique, bounded, safe characters, instance id first."""

from neuron_core_dump import flags, record
from neuron_core_dump.hostinfo import safe_token, valid_instance_id


def test_per_core_name():
    parsed = flags.parse(["--pid", "1", "--tid", "2", "--log-id", "3", "--device-id", "4", "--core-id", "5"])
    name = record.file_name("i-0123456789abcdef0", parsed, "99-ab")
    assert name == "i-0123456789abcdef0-ncd-core-pid-1-tid-2-lid-3-nd4-nc5-99-ab.json"


def test_runtime_name_has_no_core_part():
    parsed = flags.parse(["--pid", "1", "--runtime-generated", "/x"])
    assert record.file_name("i-1", parsed, "u") == "i-1-ncd-runtime-pid-1-tid-none-lid-none-u.json"


def test_hostile_values_cannot_escape_or_overflow_the_name():
    parsed = flags.parse(["--pid", "../../etc/" + "x" * 1000, "--tid", "\u2603", "--device-id", "/", "--log-id", ".."])
    name = record.file_name("i-1", parsed, "u")
    assert "/" not in name and len(name.encode()) <= 255
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def test_safe_token_and_instance_ids():
    assert safe_token(".hidden") == "hidden"
    assert safe_token("") == "none"
    assert valid_instance_id("i-0123456789abcdef0") and valid_instance_id("i-01234567")
    assert not valid_instance_id("i-XYZ") and not valid_instance_id("host") and not valid_instance_id(None)


def test_env_is_limited_to_neuron_variables():
    env = record.neuron_env({"NEURON_RT_X": "1", "AWS_SECRET_ACCESS_KEY": "s", "PATH": "/bin"}, 100)
    assert env == {"NEURON_RT_X": "1"}
