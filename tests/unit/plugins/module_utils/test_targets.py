from __future__ import annotations

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract, paths, targets

OFF = {contract.LOCAL_DIR_VAR: "", contract.S3_PREFIX_VAR: ""}


def test_default_targets():
    assert targets.default_targets([]) == ["environment", "profile", "systemd_manager"]
    assert targets.default_targets(["a.service"]) == ["environment", "profile", "systemd_manager", "units"]


def test_plan_paths(host):
    changes = targets.plan(list(targets.ALL), OFF, ["a.service"])
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
