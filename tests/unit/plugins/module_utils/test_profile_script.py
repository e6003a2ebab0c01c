from __future__ import annotations

import os
import subprocess

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract, profile_script

LOCAL = contract.LOCAL_DIR_VAR
S3 = contract.S3_PREFIX_VAR


@pytest.mark.parametrize(
    "values",
    [
        {LOCAL: "/var/lib/neuron-core-dump/dumps/dt-%d-cid-%c", S3: "s3://bucket/%d-%c"},
        {LOCAL: "", S3: ""},
        {LOCAL: "/v/%d-%c"},
    ],
)
def test_round_trip(values):
    data = profile_script.render(values)
    assert profile_script.parse(data) == values
    assert data.startswith(b"# Managed by")


def test_absent_means_no_file():
    assert profile_script.render(None) is None


def test_exact_format():
    assert profile_script.render({LOCAL: "", S3: ""}).decode().splitlines()[-2:] == [
        "export NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=''",
        "export NEURON_RT_S3_CORE_DUMP_PREFIX=''",
    ]


def test_parse_ignores_other_lines():
    data = b"export OTHER=1\nexport NEURON_RT_S3_CORE_DUMP_PREFIX=unquoted\necho hi\n"
    assert profile_script.parse(data) == {}


# Values we never write (values.py forbids them), to prove the quoting itself is sound.
HOSTILE = ["it's", "$(id)", "`id`", "a b", "new\nline", 'q"uote', "back\\slash", "%d-%c", "*"]


@pytest.mark.parametrize("value", HOSTILE)
def test_escaping_survives_a_real_shell(tmp_path, value):
    script = tmp_path / "p.sh"
    script.write_bytes(profile_script.render({LOCAL: value}))
    out = subprocess.run(
        ["/bin/sh", "-c", '. "$1"; printf %s "$NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY"', "sh", str(script)],
        capture_output=True,
        check=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    ).stdout.decode()
    assert out == value
    if "\n" not in value:  # parse() is line-based; newlines are rejected before rendering anyway
        assert profile_script.parse(script.read_bytes()) == {LOCAL: value}
