from __future__ import annotations

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract, paths, targets
from ansible_collections.neuron_ops.core_dump.plugins.module_utils.values import unsafe_characters

OFF = {contract.LOCAL_DIR_VAR: "", contract.S3_PREFIX_VAR: ""}


def test_default_targets():
    assert targets.default_targets([]) == ["environment", "profile", "systemd_manager"]
    assert targets.default_targets(["a.service"]) == ["environment", "profile", "systemd_manager", "units"]


def test_plan_paths(host):
    changes = targets.plan(targets.default_targets(["a.service"]), OFF, ["a.service"])
    assert [(c.target, c.path) for c in changes] == [
        ("environment", paths.ETC_ENVIRONMENT),
        ("profile", paths.PROFILE_SCRIPT),
        ("systemd_manager", paths.MANAGER_DROPIN),
        ("units", host.path("/etc/systemd/system/a.service.d/50-neuron-core-dump.conf")),
    ]
    assert all(c.changed and c.before is None for c in changes)


def test_absent_finds_every_managed_unit_dropin(host):
    host.write("/etc/systemd/system/old.service.d/50-neuron-core-dump.conf", "x")
    host.write("/etc/systemd/system/old.service.d/10-other.conf", "y")
    host.write("/etc/systemd/system/b.service.d/50-neuron-core-dump.conf", "z")
    assert sorted(targets.managed_unit_dropins()) == ["b.service", "old.service"]
    changes = targets.plan([targets.UNITS], None, [])
    assert sorted(c.path for c in changes if c.changed) == sorted(targets.managed_unit_dropins().values())
    assert all(c.after is None for c in changes)


# The widest values core_dump accepts (values.py): % and %% (the one escaped character), and
# the rest of printable ASCII that values.py allows.
ODD = {
    contract.LOCAL_DIR_VAR: "/var/lib/n~c+d=(x)&[y]{z}!?;*@^|<>,:/dt-%d-cid-%c-%%",
    contract.S3_PREFIX_VAR: "s3://bucket/p%%q/dt-%d-cid-%c",
}


@pytest.mark.parametrize("target", targets.REGISTRY, ids=lambda t: t.name)
@pytest.mark.parametrize("expands", [True, False])
@pytest.mark.parametrize("values", [ODD, OFF, {contract.LOCAL_DIR_VAR: "/d/%p"}], ids=["odd", "off", "one"])
def test_every_target_parses_its_own_rendering(host, target, expands, values):
    """A target without a render or a parse side, or whose sides disagree, fails here."""
    assert not [v for v in values.values() if unsafe_characters(v)]
    files = target.files(["a.service"], False)
    assert files, "%s names no file" % target.name
    for _name, path in files:
        before = b'PATH="/usr/bin"\n' if target.has_marker else None
        rendered = target.render(before, values, expands)
        if target.wanted is not None and not target.wanted(path):
            continue  # a candidate file core_dump only removes
        assert isinstance(rendered, bytes)
        assert target.parse(rendered, expands) == target.carries(values)
        assert target.presence(rendered, values) == (True, True)
        removed = target.render(rendered, None, expands)
        assert removed is None or target.parse(removed, expands) == {}
        assert path.startswith(host.root)


def test_registry_is_the_one_list_of_targets():
    assert targets.ALL == tuple(t.name for t in targets.REGISTRY) == tuple(targets.BY_NAME)
    with pytest.raises(TypeError):
        targets.Target("half", lambda units, removing: [], lambda b, v, e: b"", None)


def test_read_returns_what_plan_wrote(host):
    for change in targets.plan(targets.default_targets(["a.service"]), ODD, ["a.service"]):
        change.apply()
    found = [entry for entry in targets.read(["a.service"]) if not entry[0].container]
    assert [name for _t, name, _p, _d, _v in found] == [
        "environment",
        "profile",
        "systemd_manager",
        "unit_dropin:a.service",
    ]
    assert all(values == ODD for _t, _n, _p, _d, values in found)
