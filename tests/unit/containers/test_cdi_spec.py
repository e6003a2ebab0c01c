"""The rendered CDI spec against the CDI JSON schema and the rules Podman 4.3 applies.

The schema (cdi_schema/, vendored, see SOURCE.md) checks the structure. It does
not know versions or unknown fields, so the rules of Podman 4.3.1's vendored
container-device-interface v0.5.2 are checked too: cdiVersion 0.1.0 to 0.5.0,
strict decoding (no field outside its specs-go/config.go structs), a device
with at least one edit, env entries NAME=value, mounts with both paths.
tests/integration/containers/test_podman_cdi.py runs real Podman on the spec.
"""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import cdi_spec, container_area, contract
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

LOCAL, S3 = contract.LOCAL_DIR_VAR, contract.S3_PREFIX_VAR
SCHEMA_DIR = os.path.join(os.path.dirname(__file__), "cdi_schema")
SHARED = "/var/lib/neuron-core-dump/containers/shared"
VALUES = {
    "enabled": {LOCAL: contract.DEFAULT_LOCAL_DIR, S3: "s3://host-bucket/neuron/%d-%c"},
    "enabled_no_s3": {LOCAL: "/data/dumps/%d-%c"},
    "disabled": {LOCAL: "", S3: ""},
}
# specs-go/config.go of container-device-interface v0.5.2 (vendored in podman v4.3.1).
FIELDS_0_5 = {
    "spec": {"cdiVersion", "kind", "devices", "containerEdits"},
    "device": {"name", "containerEdits"},
    "edits": {"env", "deviceNodes", "hooks", "mounts"},
    "mount": {"hostPath", "containerPath", "options", "type"},
}


def _load(name):
    with open(os.path.join(SCHEMA_DIR, name)) as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def validator():
    registry = Registry().with_resource("defs.json", Resource.from_contents(_load("defs.json"), DRAFT7))
    return Draft7Validator(_load("schema.json"), registry=registry)


@pytest.mark.parametrize("state", sorted(VALUES))
def test_rendered_spec_is_valid_for_the_schema_and_podman_4_3(validator, state):
    spec = json.loads(cdi_spec.render(VALUES[state], SHARED))
    assert sorted(e.message for e in validator.iter_errors(spec)) == []
    assert spec["cdiVersion"] == "0.5.0" and spec["cdiVersion"] in cdi_spec.READABLE_BY_ALL
    assert set(spec) <= FIELDS_0_5["spec"]
    (device,) = spec["devices"]
    assert set(device) <= FIELDS_0_5["device"] and device["name"] == "default"
    edits = device["containerEdits"]
    assert edits and set(edits) <= FIELDS_0_5["edits"]  # an empty device is invalid in CDI
    assert all(entry.index("=") > 0 for entry in edits["env"])
    for mount in edits.get("mounts", []):
        assert set(mount) <= FIELDS_0_5["mount"] and mount["hostPath"] and mount["containerPath"]
    assert cdi_spec.problems(cdi_spec.render(VALUES[state], SHARED), SHARED) == []


def test_enabled_spec_gives_the_container_path_and_an_empty_prefix_whatever_the_host_has():
    for state in ("enabled", "enabled_no_s3"):
        data = cdi_spec.render(VALUES[state], SHARED)
        assert cdi_spec.parse(data) == {LOCAL: container_area.CONTAINER_LOCAL_DIR, S3: ""}
        (mount,) = json.loads(data)["devices"][0]["containerEdits"]["mounts"]
        assert mount["hostPath"] == SHARED and mount["containerPath"] == container_area.CONTAINER_MOUNT
        assert {"nosuid", "nodev", "noexec"} <= set(mount["options"])


def test_disabled_spec_keeps_the_device_with_empty_variables_and_no_mount():
    data = cdi_spec.render(VALUES["disabled"], SHARED)
    edits = json.loads(data)["devices"][0]["containerEdits"]
    assert edits == {"env": ["%s=" % LOCAL, "%s=" % S3]}
    assert cdi_spec.render(None, SHARED) is None


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: s.update(cdiVersion="0.6.0"), "Podman 4.3 reads at most 0.5.0"),
        (lambda s: s.update(kind="other.io/x"), "kind"),
        (lambda s: s["devices"][0].update(name="gpu"), "no device"),
        (lambda s: s["devices"][0]["containerEdits"]["env"].__setitem__(1, "%s=s3://tenant/x" % S3), "credentials"),
        (lambda s: s["devices"][0]["containerEdits"].pop("mounts"), "does not bind-mount"),
        (lambda s: s["devices"][0]["containerEdits"]["env"].pop(1), "does not set"),
    ],
)
def test_problems_name_each_broken_rule(edit, expected):
    spec = json.loads(cdi_spec.render(VALUES["enabled"], SHARED))
    edit(spec)
    found = cdi_spec.problems(json.dumps(spec).encode(), SHARED)
    assert any(expected in p for p in found), found


def test_hostile_or_broken_files_parse_to_nothing():
    for data in (b"", b"[]", b"{", b"\xff\xfe", b'{"devices": 7}', b'{"devices": [{"name": "default"}]}'):
        assert cdi_spec.parse(data) == {}
        assert cdi_spec.problems(data, SHARED)


def test_the_schema_does_reject_a_broken_spec(validator):
    """The validator is live: a spec without kind, or a mount without containerPath, fails it."""
    spec = json.loads(cdi_spec.render(VALUES["enabled"], SHARED))
    del spec["kind"]
    spec["devices"][0]["containerEdits"]["mounts"][0].pop("containerPath")
    messages = sorted(e.message for e in validator.iter_errors(spec))
    assert any("'kind' is a required property" in m for m in messages)
    assert any("'containerPath' is a required property" in m for m in messages)


def test_spec_with_the_per_container_hook_is_valid_for_the_schema_and_podman_4_3(validator):
    program = "/usr/local/bin/neuron-core-dump"
    spec = json.loads(cdi_spec.render(VALUES["enabled"], SHARED, hook_program=program))
    assert sorted(e.message for e in validator.iter_errors(spec)) == []
    (hook,) = spec["devices"][0]["containerEdits"]["hooks"]
    assert set(hook) <= {"hookName", "path", "args", "env", "timeout"}  # specs-go Hook of v0.5.2
    assert hook == {
        "hookName": "createContainer",
        "path": "/bin/sh",
        "args": ["sh", "-c", cdi_spec.HOOK_SCRIPT, program, "/var/lib/neuron-core-dump/containers"],
    }
    assert json.loads(cdi_spec.render(VALUES["enabled"], SHARED)) == spec  # the installed program by default
    assert cdi_spec.problems(json.dumps(spec).encode(), SHARED) == []
    disabled = json.loads(cdi_spec.render(VALUES["disabled"], SHARED, hook_program=program))
    assert "hooks" not in disabled["devices"][0]["containerEdits"]  # off: no directory, no hook to fail
