from __future__ import annotations

from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils.fleet_report import (
    build_report,
    render_markdown,
    summary_lines,
)


def result(containers):
    found = {"effective_state": "enabled", "drift": [], "restart_required": []}
    if containers is not None:
        found["containers"] = containers
    return found


def test_counts_hosts_with_container_coverage():
    report = build_report(
        {
            "a": result({"covered": True, "runtimes": [{"name": "podman"}]}),
            "b": result({"covered": False, "runtimes": [{"name": "containerd"}]}),
            "c": result({"covered": False, "runtimes": []}),
            "d": result(None),  # a result from a collection without container coverage
            "e": None,
        }
    )
    assert report["container_coverage"] == {"covered": 1, "not covered": 1, "no runtime": 1, "unknown": 2}
    assert report["hosts"]["a"]["containers"] == "covered"
    assert "container coverage: covered 1, no runtime 1, not covered 1, unknown 2" in summary_lines(report)
    markdown = render_markdown(report)
    assert "## Container coverage" in markdown and "| not covered | 1 |" in markdown
    assert "| a | enabled |" in markdown and markdown.count("| covered |") == 2
