"""The runtime's gate, table-driven (runtime-contract.md section 2)."""

from __future__ import annotations

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract, gate

DEFAULT = contract.RUNTIME_DEFAULT_LOCAL_DIR


@pytest.mark.parametrize(
    ("local", "s3", "hook_ok", "state", "local_dir", "s3_prefix"),
    [
        # Nothing set: the runtime default applies, dumps are on.
        (None, None, True, "enabled", DEFAULT, None),
        # The documented disable: both empty.
        ("", "", True, "disabled", None, None),
        # Local empty, S3 unset: nothing non-empty -> off.
        ("", None, True, "disabled", None, None),
        # Local unset, S3 empty: local defaults -> on.
        (None, "", True, "enabled", DEFAULT, None),
        # Local empty but S3 set: S3-only is not possible, the runtime stages in its default dir.
        ("", "s3://b/%d-%c", True, "enabled", DEFAULT, "s3://b/%d-%c"),
        ("/v/%d-%c", None, True, "enabled", "/v/%d-%c", None),
        ("/v/%d-%c", "", True, "enabled", "/v/%d-%c", None),
        ("/v/%d-%c", "s3://b/%d-%c", True, "enabled", "/v/%d-%c", "s3://b/%d-%c"),
        # Hook not executable by the workload user: off whatever the variables say.
        ("/v/%d-%c", None, False, "disabled", "/v/%d-%c", None),
        (None, None, False, "disabled", DEFAULT, None),
        ("", "", False, "disabled", None, None),
    ],
)
def test_gate(local, s3, hook_ok, state, local_dir, s3_prefix):
    result = gate.evaluate(local, s3, hook_ok)
    assert (result["state"], result["local_dir"], result["s3_prefix"]) == (state, local_dir, s3_prefix)
    assert result["reason"]


def test_local_base_is_the_fixed_directory():
    assert gate.evaluate("/var/lib/x/dumps/dt-%d-cid-%c", None, True)["local_base"] == "/var/lib/x/dumps"
    assert gate.evaluate(None, None, True)["local_base"] == "/tmp/neuron-core-dump"


def test_reasons_explain():
    assert "both variables empty" in gate.evaluate("", "", True)["reason"]
    assert "not executable" in gate.evaluate(None, None, False)["reason"]
    assert "S3 prefix set" in gate.evaluate("", "s3://b/%d-%c", True)["reason"]
