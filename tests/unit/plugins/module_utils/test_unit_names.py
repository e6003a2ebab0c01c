from __future__ import annotations

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import unit_names


@pytest.mark.parametrize(
    ("name", "full"),
    [
        ("vllm", "vllm.service"),
        ("vllm.service", "vllm.service"),
        ("train@.service", "train@.service"),
        ("train@", "train@.service"),
        ("train@rank0", "train@rank0.service"),
        ("foo.socket", "foo.socket"),
    ],
)
def test_normalize(name, full):
    assert unit_names.normalize(name) == full


@pytest.mark.parametrize("name", ["vllm", "a-b_c:d.service", "train@.service", "train@x.service", "dev-x\\x2dy"])
def test_valid(name):
    assert unit_names.problems(name) == []


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty unit name"),
        ("../etc", "not a path"),
        ("/etc/systemd/system/x.service", "not a path"),
        ("x.socket", "not a .service unit"),
        ("x" * 250 + ".service", "255-character limit"),
        ("bad name", "not a valid systemd unit name"),
        ("a@b@c", "not a valid systemd unit name"),
        ("$x", "not a valid systemd unit name"),
    ],
)
def test_invalid(name, fragment):
    (problem,) = unit_names.problems(name)
    assert problem.startswith("units: ") and fragment in problem
