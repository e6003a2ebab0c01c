# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report: one summary of many core_dump_info results (controller side).

Input is a mapping of host name to the registered result of
neuron_ops.core_dump.core_dump_info, or None for a host that gave no result
(unreachable, or it failed before the module ran). The report is plain data, so the
JSON file is just its serialisation; render_markdown() and summary_lines() present it.
Every string in the report is escaped by module_utils/escaping.py (host names, file
names, messages), so no name can break the JSON, the Markdown tables or the summary.
"""

from __future__ import annotations

from ansible_collections.neuron_ops.core_dump.plugins.module_utils.escaping import printable
from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils import fleet_jobs

NO_RESULT = "no result"


def _host_state(result) -> str:
    if not result:
        return NO_RESULT
    if result.get("failed") and "effective_state" not in result:
        return "failed"
    return result.get("effective_state") or "unknown"


def _pending(result) -> dict | None:
    status = (result or {}).get("host_status") or {}
    if not status or status.get("error"):
        return None
    uploader = status.get("uploader") or {}
    if not (status.get("spool_depth") or status.get("pending_dumps") or status.get("last_error")) and uploader.get(
        "healthy", True
    ):
        return None
    return {
        "spool_depth": status.get("spool_depth", 0),
        "pending_dumps": status.get("pending_dumps", 0),
        "last_error": status.get("last_error"),
        "uploader_healthy": uploader.get("healthy"),
        "uploader_detail": uploader.get("detail"),
    }


def _storage_totals(result) -> dict:
    totals = {"bytes": 0, "count": 0}
    for entry in (result or {}).get("storage") or []:
        totals["bytes"] += entry.get("bytes") or 0
        totals["count"] += entry.get("count") or 0
    return totals


def _containers(result) -> str:
    """covered / not covered / no runtime / unknown (a result from before container coverage)."""
    section = (result or {}).get("containers")
    if not isinstance(section, dict):
        return "unknown"
    if section.get("covered"):
        return "covered"
    return "not covered" if section.get("runtimes") else "no runtime"


def _dump_count(result):
    """Dump dirs on the host (dumps_total), or None for a result without the dumps list."""
    result = result or {}
    if not isinstance(result.get("dumps"), list):
        return None
    total = result.get("dumps_total")
    return total if isinstance(total, int) else len(result["dumps"])


def build_report(results: dict, expect: str | None = None) -> dict:
    """Aggregate per-host results into counts, drift, restarts and pending uploads."""
    results = printable(results)
    by_state: dict = {}
    containers: dict = {}
    hosts = {}
    drifting = []
    restarts = []
    pending = []
    for host in sorted(results):
        result = results[host]
        state = _host_state(result)
        by_state[state] = by_state.get(state, 0) + 1
        coverage = _containers(result)
        containers[coverage] = containers.get(coverage, 0) + 1
        findings = list((result or {}).get("drift") or [])
        if result is None:
            findings.append({"where": "host", "reason": "no core_dump_info result (unreachable or failed earlier)"})
        elif expect and state != expect:
            findings.append({"where": "host", "reason": "effective state is %s, expected %s" % (state, expect)})
        if findings:
            drifting.append({"host": host, "findings": findings})
        for process in (result or {}).get("restart_required") or []:
            restarts.append(dict(process, host=host))
        host_pending = _pending(result)
        if host_pending:
            pending.append(dict(host_pending, host=host))
        hook = (result or {}).get("hook") or {}
        hosts[host] = {
            "state": state,
            "hook": hook.get("kind"),
            "hook_version": hook.get("version"),
            "drift": len(findings),
            "restart_required": len((result or {}).get("restart_required") or []),
            "storage": _storage_totals(result),
            "containers": coverage,
            "dumps": _dump_count(result),
        }
    jobs = fleet_jobs.build_jobs(results)
    return {
        "expect": expect,
        "host_count": len(results),
        "by_state": by_state,
        "container_coverage": containers,
        "drifting_hosts": drifting,
        "restart_required": restarts,
        "pending_uploads": pending,
        "hosts": hosts,
        "jobs": jobs["jobs"],
        "hosts_without_dumps": jobs["hosts_without_dumps"],
        "hosts_with_more_dumps": jobs["hosts_with_more_dumps"],
        "ok": not drifting and not restarts,
    }


def summary_lines(report: dict) -> list:
    """A one-screen summary for the play output."""
    report = printable(report)
    states = ", ".join("%s %d" % item for item in sorted(report["by_state"].items())) or "none"
    lines = [
        "%d hosts: %s" % (report["host_count"], states),
        "drifting hosts: %d" % len(report["drifting_hosts"]),
        "processes to restart: %d" % len(report["restart_required"]),
        "hosts with pending uploads: %d" % len(report["pending_uploads"]),
        "container coverage: %s"
        % (", ".join("%s %d" % item for item in sorted(report.get("container_coverage", {}).items())) or "none"),
    ]
    lines += _jobs_summary(report)
    for entry in report["drifting_hosts"][:10]:
        lines.append("  %s: %s" % (entry["host"], "; ".join(f["reason"] for f in entry["findings"])[:160]))
    if len(report["drifting_hosts"]) > 10:
        lines.append("  ... and %d more (see fleet-report.md)" % (len(report["drifting_hosts"]) - 10))
    return lines


def _jobs_summary(report: dict) -> list:
    jobs = report.get("jobs") or []
    incomplete = sum(1 for job in jobs if not job["upload_complete"])
    lines = ["jobs with dumps: %d (%d not uploaded from every host)" % (len(jobs), incomplete)]
    job = fleet_jobs.newest_failed(jobs)
    if job:
        line = "newest failed job: %s at %s on %d host(s), %s, uploaded %s" % (
            job["job"],
            job["newest"] or "unknown time",
            job["host_count"],
            fleet_jobs.errors_text(job),
            fleet_jobs.upload_text(job),
        )
        if job["pending"]:
            line += " (%s)" % fleet_jobs.waiting_text(job)
        if job["containers"]:
            line += ", from %s" % fleet_jobs.containers_text(job, limit=1)
        lines.append(line[:400])
        playbook = "fetch_job" if job["uploaded_hosts"] else "pull_job"
        lines.append(
            "  get it: ansible-playbook neuron_ops.core_dump.%s -e neuron_core_dump_job=%s"
            " -e neuron_core_dump_fleet_report=fleet-report.json" % (playbook, job["job"])
        )
    without = report.get("hosts_without_dumps") or []
    if without:
        lines.append("hosts without a dumps list (older collection or no result): %d" % len(without))
    return lines


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: list, rows: list) -> list:
    """A Markdown table, or "None." when there are no rows."""
    if not rows:
        return ["None."]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def _differs(proc: dict) -> str:
    return ", ".join(
        "%s=%r (now %r)" % (d.get("variable"), d.get("process"), d.get("current")) for d in proc.get("differs") or []
    )


def _uploader(entry: dict) -> str:
    return "healthy" if entry.get("uploader_healthy") else "unhealthy: %s" % entry.get("uploader_detail")


def _hook(info: dict) -> str:
    return " ".join(part for part in (info["hook"] or "?", info.get("hook_version")) if part)


MARKDOWN_JOB_ROWS = 200


def _jobs_markdown(report: dict) -> list:
    jobs = report.get("jobs") or []
    rows = [
        (
            job["job"],
            job["newest"] or "?",
            "%d: %s" % (job["host_count"], fleet_jobs.hosts_text(job)),
            fleet_jobs.errors_text(job, limit=5),
            fleet_jobs.containers_text(job) or "host",
            job["bytes"],
            fleet_jobs.upload_text(job),
            fleet_jobs.waiting_text(job, limit=5) or "-",
        )
        for job in jobs[:MARKDOWN_JOB_ROWS]
    ]
    out = [
        "One row per job key, newest first. *uploaded*: hosts whose manifest is in S3 / hosts that hold the dump.",
        "",
    ]
    out += _table(["job", "newest dump", "hosts", "errors", "from", "bytes", "uploaded", "pending or failed"], rows)
    if len(jobs) > MARKDOWN_JOB_ROWS:
        out += ["", "... and %d older jobs (see fleet-report.json)." % (len(jobs) - MARKDOWN_JOB_ROWS)]
    for capped in report.get("hosts_with_more_dumps") or []:
        out += ["", "%s lists %d of its %d dump dirs." % (capped["host"], capped["listed"], capped["total"])]
    without = report.get("hosts_without_dumps") or []
    if without:
        out += [
            "",
            "Not counted (no dumps list: older collection or no result): %s." % ", ".join(without[:20])
            + (" and %d more" % (len(without) - 20) if len(without) > 20 else ""),
        ]
    return out


def render_markdown(report: dict) -> str:
    report = printable(report)
    drift_rows = [
        (entry["host"], finding.get("where"), finding.get("reason"))
        for entry in report["drifting_hosts"]
        for finding in entry["findings"]
    ]
    restart_rows = [
        (proc["host"], proc.get("pid"), proc.get("comm"), proc.get("unit"), _differs(proc))
        for proc in report["restart_required"]
    ]
    pending_rows = [
        (entry["host"], entry["spool_depth"], entry["pending_dumps"], _uploader(entry), entry.get("last_error"))
        for entry in report["pending_uploads"]
    ]
    host_rows = [
        (
            host,
            info["state"],
            _hook(info),
            info["drift"],
            info["restart_required"],
            "%d (%d bytes)" % (info["storage"]["count"], info["storage"]["bytes"]),
            info.get("containers", "unknown"),
            "unknown" if info.get("dumps") is None else info["dumps"],
        )
        for host, info in sorted(report["hosts"].items())
    ]
    out = ["# Neuron core-dump fleet report", ""]
    if report.get("expect"):
        out += ["Expected state: **%s**" % report["expect"], ""]
    out += ["## Hosts by effective state", ""]
    out += _table(["state", "hosts"], sorted(report["by_state"].items()))
    out += ["", "## Container coverage", ""]
    out += _table(["containers", "hosts"], sorted(report.get("container_coverage", {}).items()))
    out += ["", "## Drifting hosts (%d)" % len(report["drifting_hosts"]), ""]
    out += _table(["host", "where", "why"], drift_rows)
    out += ["", "## Processes that need a restart (%d)" % len(restart_rows), ""]
    out += _table(["host", "pid", "command", "unit", "differs"], restart_rows)
    out += ["", "## Pending uploads (%d hosts)" % len(pending_rows), ""]
    out += _table(["host", "spool", "pending dumps", "uploader", "last error"], pending_rows)
    out += ["", "## Jobs (%d)" % len(report.get("jobs") or []), ""]
    out += _jobs_markdown(report)
    out += ["", "## All hosts", ""]
    out += _table(["host", "state", "hook", "drift", "restarts", "local dumps", "containers", "dump dirs"], host_rows)
    return "\n".join(out) + "\n"
