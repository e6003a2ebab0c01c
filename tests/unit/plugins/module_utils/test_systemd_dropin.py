from __future__ import annotations

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract, systemd_dropin

LOCAL = contract.LOCAL_DIR_VAR
S3 = contract.S3_PREFIX_VAR
ENABLED = {LOCAL: "/var/lib/neuron-core-dump/dumps/dt-%d-cid-%c", S3: "s3://bucket/%d-%c"}
DISABLED = {LOCAL: "", S3: ""}


def test_unit_dropin_exact_format():
    text = systemd_dropin.render_unit(ENABLED).decode()
    assert text.splitlines()[2:] == [
        "[Service]",
        'Environment="NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=/var/lib/neuron-core-dump/dumps/dt-%%d-cid-%%c"',
        'Environment="NEURON_RT_S3_CORE_DUMP_PREFIX=s3://bucket/%%d-%%c"',
    ]


def test_manager_dropin_exact_format():
    text = systemd_dropin.render_manager(DISABLED).decode()
    assert text.splitlines()[2:] == [
        "[Manager]",
        'DefaultEnvironment="NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY="',
        'DefaultEnvironment="NEURON_RT_S3_CORE_DUMP_PREFIX="',
    ]


@pytest.mark.parametrize("values", [ENABLED, DISABLED, {LOCAL: "/v/%p/%d-%c"}])
def test_unit_round_trip(values):
    assert systemd_dropin.parse_unit(systemd_dropin.render_unit(values)) == values


@pytest.mark.parametrize("expands", [True, False])
@pytest.mark.parametrize("values", [ENABLED, DISABLED])
def test_manager_round_trip(values, expands):
    data = systemd_dropin.render_manager(values, expands)
    assert systemd_dropin.parse_manager(data, expands) == values


def test_manager_escaping_follows_the_systemd_version():
    assert "%%d" in systemd_dropin.render_manager(ENABLED, True).decode()
    assert "%%" not in systemd_dropin.render_manager(ENABLED, False).decode()


@pytest.mark.parametrize(
    ("version", "expands"),
    [(None, True), (219, False), (248, False), (249, True), (252, True), (257, True)],
)
def test_manager_expands_specifiers(version, expands):
    assert systemd_dropin.manager_expands_specifiers(version) is expands


def test_absent_means_no_file():
    assert systemd_dropin.render_unit(None) is None
    assert systemd_dropin.render_manager(None) is None


def test_parse_reads_what_humans_write():
    data = (
        b"[Unit]\nDescription=x\n"
        b"[Service]\n"
        b"# Environment=NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=/commented\n"
        b"Environment=OTHER=1 NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=/a/%%d-%%c\n"
        b"Environment='NEURON_RT_S3_CORE_DUMP_PREFIX=s3://b/%%d-%%c' \\\n"
        b"  FOO=bar\n"
        b"[Install]\nEnvironment=NEURON_RT_S3_CORE_DUMP_PREFIX=wrong-section\n"
    )
    assert systemd_dropin.parse_unit(data) == {LOCAL: "/a/%d-%c", S3: "s3://b/%d-%c"}


def test_empty_assignment_resets_the_list():
    data = b'[Service]\nEnvironment="NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=/a"\nEnvironment=\n'
    assert systemd_dropin.parse_unit(data) == {}


@pytest.mark.parametrize(
    ("rvalue", "words"),
    [
        ('"A=1 2" B=3', ["A=1 2", "B=3"]),
        ("'A=x' \"B=y\"", ["A=x", "B=y"]),
        ("A=a\\tb", ["A=a\tb"]),
        ("A=", ["A="]),
        ('"A="', ["A="]),
        ("  ", []),
    ],
)
def test_split_words(rvalue, words):
    assert systemd_dropin.split_words(rvalue) == words


@pytest.mark.parametrize(
    ("text", "version"),
    [("systemd 252 (252.30-1~deb12u2)\n+PAM", 252), ("systemd 257 (257.8-1)", 257), ("", None), ("junk", None)],
)
def test_parse_version(text, version):
    assert systemd_dropin.parse_version(text) == version


def test_escape_functions():
    assert systemd_dropin.escape_unit_value("/a/%d-%c") == "/a/%%d-%%c"
    assert systemd_dropin.escape_manager_value("/a/%d", True) == "/a/%%d"
    assert systemd_dropin.escape_manager_value("/a/%d", False) == "/a/%d"
    assert systemd_dropin.unescape_specifiers("/a/%%d-%%%%") == "/a/%d-%%"
