"""/etc/environment: pam_env's reading rules, and edits that touch only our keys."""

from __future__ import annotations

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract, etc_environment

LOCAL = contract.LOCAL_DIR_VAR
S3 = contract.S3_PREFIX_VAR
ENABLED = {LOCAL: "/var/lib/neuron-core-dump/dumps/dt-%d-cid-%c", S3: "s3://bucket/%d-%c"}
DISABLED = {LOCAL: "", S3: ""}

HOSTILE = (
    b"# /etc/environment: system-wide environment\r\n"
    b'PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"\n'
    b"LANG=C.UTF-8\r\n"
    b"export EDITOR=vi\n"
    b"   \t\n"
    b"WEIRD='single' \"mixed\"\n"
    b"bad-key=ignored by pam_env\n"
    b"TRAILING=value # not a comment for pam_env: value ends at the hash\n"
    b"\xff\xfe binary junk\n"
    b"NO_NEWLINE_AT_EOF=1"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"A=1\n", {"A": "1"}),
        (b'A="1 2"\n', {"A": "1 2"}),
        (b"A='x'\n", {"A": "x"}),
        (b'A=""\n', {"A": ""}),
        (b"A=\n", {"A": ""}),
        (b"export A=1\n", {"A": "1"}),
        (b"   A=1\n", {"A": "1"}),
        (b"# A=1\n", {}),
        (b"A=1 # c\n", {"A": "1 "}),
        (b"A=1\r\n", {"A": "1\r"}),
        (b'A="x"y"\n', {"A": 'x"y'}),
        (b"A=1\nA=2\n", {"A": "2"}),
        (b"A=1\nA\n", {}),
        (b"A-B=1\n", {}),
        (b"=1\n", {}),
        (b"A=1\\\nB=2\n", {"A": "1B=2"}),
        (b"A=1\\\n# comment\nB=2\n", {"A": "1B=2"}),
        (b"A=1 \\  \nB=2\n", {"A": "1 B=2"}),
        (b"A=1#x\\\nB=2\n", {"A": "1", "B": "2"}),
        (b"A=1", {"A": "1"}),
        (b"", {}),
    ],
)
def test_parse_like_pam_env(text, expected):
    assert etc_environment.parse(text) == expected


def test_render_into_missing_file():
    out = etc_environment.render(None, ENABLED)
    assert out == (
        etc_environment.MARKER + b"\n"
        b'NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY="/var/lib/neuron-core-dump/dumps/dt-%d-cid-%c"\n'
        b'NEURON_RT_S3_CORE_DUMP_PREFIX="s3://bucket/%d-%c"\n'
    )
    assert etc_environment.managed_values(out) == ENABLED


@pytest.mark.parametrize("values", [ENABLED, DISABLED, {LOCAL: "/v/%d-%c"}])
def test_round_trip(values):
    out = etc_environment.render(HOSTILE, values)
    assert etc_environment.managed_values(out) == values
    assert etc_environment.render(out, values) == out


def test_hostile_content_is_kept_byte_for_byte():
    out = etc_environment.render(HOSTILE, ENABLED)
    block = etc_environment.render_block(ENABLED)
    assert out == block + HOSTILE
    # What pam_env gives every other key is unchanged.
    before = etc_environment.parse(HOSTILE)
    after = etc_environment.parse(out)
    assert {k: v for k, v in after.items() if k not in ENABLED} == before


def test_absent_restores_the_original_bytes():
    out = etc_environment.render(HOSTILE, ENABLED)
    assert etc_environment.render(out, None) == HOSTILE


def test_absent_on_missing_file_stays_missing():
    assert etc_environment.render(None, None) is None


def test_absent_leaves_an_empty_file_when_only_ours_was_there():
    assert etc_environment.render(etc_environment.render(None, ENABLED), None) == b""


def test_block_stays_where_it_is():
    existing = b"A=1\n" + etc_environment.render_block(ENABLED) + b"B=2\n"
    out = etc_environment.render(existing, DISABLED)
    assert out == b"A=1\n" + etc_environment.render_block(DISABLED) + b"B=2\n"


def test_foreign_assignments_of_our_keys_are_taken_over():
    existing = (
        b"A=1\n"
        b"NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=/old\n"
        b"B=2\n"
        b"  export NEURON_RT_S3_CORE_DUMP_PREFIX='s3://old/x'\n"
        b"NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY\n"
        b"# NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=/commented stays\n"
        b"NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY_OTHER=kept\n"
    )
    out = etc_environment.render(existing, DISABLED)
    assert out == (
        etc_environment.render_block(DISABLED)
        + b"A=1\nB=2\n# NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=/commented stays\n"
        + b"NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY_OTHER=kept\n"
    )
    assert etc_environment.managed_values(out) == DISABLED


def test_a_continued_foreign_line_cannot_swallow_our_block():
    # pam_env would join the line after "FOO=bar\" onto FOO, comment lines skipped.
    existing = b"FOO=bar\\\n" + etc_environment.render_block(ENABLED) + b"Z=1\n"
    out = etc_environment.render(existing, ENABLED)
    assert etc_environment.managed_values(out) == ENABLED
    assert out.startswith(etc_environment.MARKER)
    # And the second run is stable.
    assert etc_environment.render(out, ENABLED) == out


def test_our_key_inside_a_foreign_continuation_is_not_ours():
    existing = b"FOO=bar\\\nNEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=/x\n"
    assert etc_environment.parse(existing) == {"FOO": "barNEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=/x"}
    out = etc_environment.render(existing, DISABLED)
    assert out == etc_environment.render_block(DISABLED) + existing


def test_a_continued_assignment_of_our_key_is_removed_whole():
    existing = b"NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=/x\\\n/y\nB=2\n"
    out = etc_environment.render(existing, DISABLED)
    assert out == etc_environment.render_block(DISABLED) + b"B=2\n"


def test_marker_detection():
    assert etc_environment.has_marker(etc_environment.render(None, DISABLED))
    assert not etc_environment.has_marker(HOSTILE)
    assert not etc_environment.has_marker(None)


def test_escape_value_reads_back_through_pam_env():
    for value in ["", "/a/%d-%c", "s3://b/k=v/(x)!*_.-"]:
        line = ("K=%s\n" % etc_environment.escape_value(value)).encode()
        assert etc_environment.parse(line) == {"K": value}
