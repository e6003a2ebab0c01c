"""The hook's JSON helpers agree with the json module."""

import json
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from neuron_core_dump import fastjson

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_dumps_is_read_back_by_json(value):
    assert json.loads(fastjson.dumps(value)) == value
    assert json.loads(fastjson.dumps(value, indent=1)) == value


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_loads_reads_what_json_writes(value):
    assert fastjson.loads(json.dumps(value)) == value
    assert fastjson.loads("  \n" + json.dumps(value, indent=2) + "\n ") == value


def test_lone_surrogates_are_escaped():
    text = fastjson.dumps({"argv": "\udcff-bytes"})
    assert text.isascii()
    assert json.loads(text) == {"argv": "\udcff-bytes"}


def test_non_finite_numbers_become_null():
    assert fastjson.dumps([float("nan"), float("inf")]) == "[null, null]"


def test_invalid_documents_raise_value_error():
    for text in ("{", "[1] x", "NaN", "{'a': 1}", ""):
        try:
            fastjson.loads(text)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % text)


def test_only_the_hooks_path_uses_fastjson():
    """The hook's path (config, record, spool entry) saves ~7 ms with it, and so does `status`,
    which starts without boto3: it reads the state files (fsutil.load_json) and prints (cli._emit)
    with it. The uploader imports boto3, which loads json anyway: it writes with json."""
    package = os.path.dirname(fastjson.__file__)
    users = set()
    for name in os.listdir(package):
        if name.endswith(".py") and name not in ("fastjson.py", "__init__.py"):
            with open(os.path.join(package, name)) as handle:
                if "fastjson." in handle.read():
                    users.add(name[:-3])
    assert users == {"cli", "config", "fsutil", "hook", "hostinfo", "spool"}
