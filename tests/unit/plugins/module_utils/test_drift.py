from __future__ import annotations

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract, drift, gate

LOCAL = contract.LOCAL_DIR_VAR
S3 = contract.S3_PREFIX_VAR
ON = {LOCAL: "/v/%d-%c", S3: None}
OFF = {LOCAL: "", S3: ""}


def ctx(name, variables, available=True, hook_ok=True):
    return {
        "name": name,
        "available": available,
        "variables": variables,
        "effective": gate.evaluate(variables.get(LOCAL), variables.get(S3), hook_ok),
    }


def target(name, variables, exists=True):
    item = ctx(name, variables)
    item["exists"] = exists
    return item


def test_all_agree_no_drift():
    contexts = [ctx("login_shell", ON), ctx("systemd_service", ON)]
    assert drift.find(contexts, [target("profile", ON)], "enabled") == []


def test_expected_state_differs_per_context():
    contexts = [ctx("login_shell", OFF), ctx("systemd_service", OFF)]
    found = drift.find(contexts, [], "enabled")
    assert [f["where"] for f in found] == ["login_shell", "systemd_service"]
    assert "expected enabled" in found[0]["reason"] and "both variables empty" in found[0]["reason"]


def test_contexts_disagree_without_expect():
    contexts = [ctx("login_shell", ON), ctx("systemd_service", {LOCAL: None, S3: None})]
    (finding,) = drift.find(contexts, [])
    assert finding["where"] == "contexts"
    assert "login_shell: enabled (local /v/%d-%c)" in finding["reason"]
    assert "systemd_service: enabled (local /tmp/neuron-core-dump/dt-%d-cid-%c)" in finding["reason"]


def test_unavailable_contexts_are_not_compared():
    contexts = [ctx("login_shell", ON), ctx("systemd_service", {}, available=False)]
    assert drift.find(contexts, [], "enabled") == []


def test_targets_disagree():
    found = drift.find([], [target("profile", ON), target("environment", OFF), target("units", OFF, exists=False)])
    assert [f["where"] for f in found] == ["targets"]
    assert "profile: local='/v/%d-%c' s3=unset" in found[0]["reason"]


def test_target_against_expect():
    found = drift.find([], [target("systemd_manager", OFF)], "enabled")
    assert found[0]["where"] == "systemd_manager" and "expected enabled" in found[0]["reason"]


def test_file_not_applied_yet():
    live = [
        {
            "where": "systemd_manager",
            "configured": OFF,
            "running": {LOCAL: None, S3: None},
            "hint": "run systemctl daemon-reexec",
        }
    ]
    (finding,) = drift.find([], [], None, live)
    assert "on disk local='' s3=''" in finding["reason"] and "daemon-reexec" in finding["reason"]


def test_message_lists_everything():
    text = drift.message([{"where": "a", "reason": "x"}, {"where": "b", "reason": "y"}], "disabled")
    assert text == "core dump settings drift (expected disabled): a: x | b: y"
