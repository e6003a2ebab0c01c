from __future__ import annotations

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import values


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("a\nb", "newline"),
        ("a\rb", "carriage return"),
        ('a"b', "double quote"),
        ("a'b", "single quote"),
        ("a$b", "dollar sign"),
        ("a\\b", "backslash"),
        ("a`b", "backtick"),
        ("a#b", "hash"),
        ("a b", "whitespace"),
        ("a\tb", "whitespace"),
        ("a\x01b", "control character"),
        ("a\x7fb", "control character"),
        ("a\u00e9b", "non-ASCII"),
    ],
)
def test_each_unsafe_character_is_named(value, reason):
    found = values.unsafe_characters(value)
    assert len(found) == 1 and found[0].startswith(reason)


def test_safe_values_pass():
    assert values.unsafe_characters("/var/lib/neuron-core-dump/dumps/dt-%d-cid-%c") == []
    assert values.unsafe_characters("s3://bucket/a=b/(x)!*_.-/%d-%c") == []
    assert values.unsafe_characters("") == []


def test_each_reason_is_reported_once():
    assert values.unsafe_characters("a b c\n\n") == ["whitespace ' '", "newline"]
