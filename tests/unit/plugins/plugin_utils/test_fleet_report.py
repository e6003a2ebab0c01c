"""The fleet report aggregates core_dump_info results without losing a drifting host."""

from __future__ import annotations

from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils.fleet_report import (
    build_report,
    render_markdown,
    summary_lines,
)


def info(state="enabled", drift=(), restart=(), status=None, hook="ours"):
    return {
        "effective_state": state,
        "drift": list(drift),
        "restart_required": list(restart),
        "host_status": status,
        "hook": {"kind": hook, "version": "0.1.0" if hook == "ours" else None},
        "storage": [{"bytes": 10, "count": 1}, {"bytes": 5, "count": 2}],
    }


def test_counts_hosts_by_state_and_flags_unreachable_ones():
    report = build_report({"a": info(), "b": info("disabled"), "c": None}, expect="enabled")
    assert report["by_state"] == {"enabled": 1, "disabled": 1, "no result": 1}
    assert [entry["host"] for entry in report["drifting_hosts"]] == ["b", "c"]
    assert "expected enabled" in report["drifting_hosts"][0]["findings"][0]["reason"]
    assert not report["ok"]


def test_keeps_each_drift_finding_and_restart_with_its_host():
    finding = {"where": "profile", "reason": "local differs"}
    proc = {
        "pid": 7,
        "comm": "python3",
        "unit": "train.service",
        "differs": [{"variable": "X", "process": None, "current": ""}],
    }
    report = build_report({"a": info(drift=[finding], restart=[proc])})
    assert report["drifting_hosts"] == [{"host": "a", "findings": [finding]}]
    assert report["restart_required"] == [dict(proc, host="a")]
    assert report["hosts"]["a"]["storage"] == {"bytes": 15, "count": 3}


def test_pending_uploads_only_lists_hosts_with_work_or_trouble():
    idle = {"spool_depth": 0, "pending_dumps": 0, "last_error": None, "uploader": {"healthy": True, "detail": "idle"}}
    busy = dict(idle, pending_dumps=2, last_error="S3 unreachable")
    report = build_report({"idle": info(status=idle), "busy": info(status=busy), "none": info(status=None)})
    assert [entry["host"] for entry in report["pending_uploads"]] == ["busy"]
    assert report["pending_uploads"][0]["last_error"] == "S3 unreachable"
    assert report["ok"]


def test_markdown_and_summary_name_every_drifting_host_and_escape_cells():
    finding = {"where": "environment", "reason": "value a|b\nnext"}
    report = build_report({"h1": info(drift=[finding]), "h2": info()})
    text = render_markdown(report)
    assert "| h1 | environment | value a\\|b next |" in text
    assert "| h2 | enabled | ours 0.1.0 | 0 | 0 | 3 (15 bytes) |" in text
    lines = summary_lines(report)
    assert lines[0] == "2 hosts: enabled 2"
    assert any(line.startswith("  h1: ") for line in lines)
