"""The fleet report's Jobs section: one row per job key across hosts, from core_dump_info's ``dumps``.

The per-dump fields are core_dump_info's interface (name, path, job_key, job, time, error_code,
error_name, ..., upload {state, last_error, manifest_uri}); the fixtures below are hand-written
results of that shape, several hosts each.
"""

from __future__ import annotations

import json

from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils.fleet_report import (
    build_report,
    render_markdown,
    summary_lines,
)

JOB_A = "dt-20260301-101500-cid-00000000000000aa"
JOB_B = "dt-20260302-080000-cid-00000000000000bb"


def dump(job, when, code=1006, name="NRT_EXEC_HW_ERR_COLLECTIVES", state="uploaded", error=None, size=100, host="h"):
    uri = "s3://dumps/neuron/%s/i-%s-manifest.json" % (job, host) if state == "uploaded" else None
    d, _unused, c = job[3:].partition("-cid-")
    return {
        "name": job,
        "path": "/var/lib/neuron-dumps/%s" % job,
        "job_key": job,
        "job": {"d": d, "c": c},
        "time": when,
        "error_code": code,
        "error_name": name,
        "error_location": "nrt_execute()",
        "neff_name": "llama.neff",
        "neff_uuid": "u-1",
        "pids": [7],
        "ranks": [0],
        "devices": [0],
        "cores": [0, 1],
        "files": 3,
        "bytes": size,
        "origin": {"kind": "host"},
        "upload": {"state": state, "last_error": error, "manifest_uri": uri},
    }


def result(*dumps, total=None):
    return {
        "effective_state": "enabled",
        "drift": [],
        "restart_required": [],
        "dumps": list(dumps),
        "dumps_total": len(dumps) if total is None else total,
    }


def fleet():
    return {
        "trn-1": result(dump(JOB_A, "2026-03-01T10:15:02Z", host="1"), dump(JOB_B, "2026-03-02T08:00:01Z", host="1")),
        "trn-2": result(dump(JOB_A, "2026-03-01T10:15:03Z", host="2")),
        "trn-3": result(
            dump(
                JOB_A,
                "2026-03-01T10:15:01Z",
                code=5,
                name="NRT_TIMEOUT",
                state="pending",
                error="S3 unreachable: connect timeout",
                host="3",
            )
        ),
        "trn-4": result(dump(JOB_B, "2026-03-02T08:00:02Z", state="failed", error="AccessDenied", host="4")),
        "old": {"effective_state": "enabled", "drift": [], "restart_required": []},  # older collection
        "gone": None,  # unreachable
    }


def test_one_row_per_job_newest_first_with_hosts_errors_bytes_and_completeness():
    report = build_report(fleet())
    jobs = report["jobs"]
    assert [job["job"] for job in jobs] == [JOB_B, JOB_A]
    a = jobs[1]
    assert a["hosts"] == ["trn-1", "trn-2", "trn-3"] and a["host_count"] == 3
    assert a["newest"] == "2026-03-01T10:15:03Z" and a["oldest"] == "2026-03-01T10:15:01Z"
    assert [(e["code"], e["name"], e["dumps"]) for e in a["errors"]] == [
        (1006, "NRT_EXEC_HW_ERR_COLLECTIVES", 2),
        (5, "NRT_TIMEOUT", 1),
    ]
    assert a["bytes"] == 300 and a["files"] == 9 and a["dumps"] == 3
    assert a["uploaded_hosts"] == 2 and not a["upload_complete"]
    assert a["pending"] == [{"host": "trn-3", "state": "pending", "reason": "S3 unreachable: connect timeout"}]
    assert a["by_host"]["trn-1"]["manifest_uris"] == ["s3://dumps/neuron/%s/i-1-manifest.json" % JOB_A]
    assert a["job_ids"] == {"d": "20260301-101500", "c": "00000000000000aa"}
    b = jobs[0]
    assert b["pending"] == [{"host": "trn-4", "state": "failed", "reason": "AccessDenied"}]
    # hosts without a dumps list are named, not an error
    assert report["hosts_without_dumps"] == ["gone", "old"]
    assert report["hosts"]["old"]["dumps"] is None and report["hosts"]["trn-1"]["dumps"] == 2


def test_a_host_counts_as_uploaded_only_when_all_its_dump_dirs_of_the_job_are():
    two_dirs = result(
        dump(JOB_A, "2026-03-01T10:15:00Z"),
        dict(dump(JOB_A, "2026-03-01T10:15:09Z", state="pending", error="queued"), name=JOB_A + "-x"),
    )
    job = build_report({"a": two_dirs})["jobs"][0]
    assert job["dumps"] == 2 and job["uploaded_hosts"] == 0
    assert job["pending"] == [{"host": "a", "state": "pending", "reason": "queued"}]


def test_local_only_fleet_and_dumps_without_job_key_or_error():
    local = dump(JOB_A, "2026-03-01T10:15:00Z", state="local_only")
    manual = dict(dump("manual-capture", None, code=None, name=None, state="local_only"), job_key=None)
    report = build_report({"a": result(local, manual), "b": result(local)})
    jobs = {job["job"]: job for job in report["jobs"]}
    assert jobs[JOB_A]["local_only"] == ["a", "b"] and jobs[JOB_A]["pending"] == []
    assert jobs["manual-capture"]["failed"] is False and jobs["manual-capture"]["errors"][0]["label"] == "none"
    assert report["jobs"][-1]["job"] == "manual-capture"  # no time: last
    assert "| 2/2" not in render_markdown(report) and "0/2 (local only)" in render_markdown(report)


def test_markdown_and_summary_name_the_newest_failed_job():
    report = build_report(fleet())
    text = render_markdown(report)
    assert "## Jobs (2)" in text
    row = next(line for line in text.splitlines() if line.startswith("| %s " % JOB_A))
    assert "3: trn-1, trn-2, trn-3" in row and "| 300 | 2/3 |" in row
    assert "NRT_EXEC_HW_ERR_COLLECTIVES (1006) x2, NRT_TIMEOUT (5) x1" in row
    assert "trn-3 pending: S3 unreachable: connect timeout" in row
    assert "Not counted (no dumps list: older collection or no result): gone, old." in text
    lines = summary_lines(report)
    assert "jobs with dumps: 2 (2 not uploaded from every host)" in lines
    newest = next(line for line in lines if line.startswith("newest failed job: "))
    assert JOB_B in newest and "uploaded 1/2" in newest and "trn-4 failed: AccessDenied" in newest
    assert "  get it: ansible-playbook neuron_ops.core_dump.fetch_job -e neuron_core_dump_job=%s" % JOB_B in "\n".join(
        lines
    )
    json.dumps(report)  # the JSON file is the plain serialisation


def test_a_dump_adopted_from_a_container_names_its_container():
    origin = {
        "kind": "container",
        "container_id": "0123456789ab" + "c" * 52,
        "hostname": "0123456789ab",
        "image": None,
        "runtime": "podman",
        "cgroup": "/libpod_parent/libpod-0123",
        "attribution": "enforced",
        "attribution_id": "0123456789ab" + "c" * 52,
    }
    report = build_report(
        {
            "trn-1": result(dump(JOB_A, "2026-03-01T10:15:02Z")),
            "trn-2": result(dict(dump(JOB_B, "2026-03-02T08:00:01Z"), origin=origin)),
        }
    )
    by_job = {job["job"]: job for job in report["jobs"]}
    assert by_job[JOB_A]["containers"] == []
    (container,) = by_job[JOB_B]["containers"]
    assert container == {
        "host": "trn-2",
        "container_id": origin["container_id"],
        "hostname": "0123456789ab",
        "image": None,
        "runtime": "podman",
        "attribution": "enforced",
    }
    text = render_markdown(report)
    row = next(line for line in text.splitlines() if line.startswith("| %s " % JOB_B))
    assert "| container 0123456789ab on trn-2 (podman, enforced) |" in row
    assert "| host |" in next(line for line in text.splitlines() if line.startswith("| %s " % JOB_A))
    newest = next(line for line in summary_lines(report) if line.startswith("newest failed job: "))
    assert newest.endswith(", from container 0123456789ab on trn-2 (podman, enforced)")


def test_hostile_names_stay_printable_and_cannot_break_the_table():
    evil = dict(dump("dt-x|y\n-cid-\udcff", "2026-03-01T10:15:00Z"), job_key="dt-x|y\n-cid-\udcff")
    report = build_report({"h|1": result(evil)})
    assert report["jobs"][0]["job"] == "dt-x|y\\x0a-cid-\\xff" or "\\xff" in report["jobs"][0]["job"]
    row = next(line for line in render_markdown(report).splitlines() if line.startswith("| dt-x"))
    assert "dt-x\\|y" in row and "h\\|1" in row
    json.dumps(report, ensure_ascii=False).encode("utf-8")


def test_capped_dump_lists_are_reported():
    report = build_report({"a": result(dump(JOB_A, "2026-03-01T10:15:00Z"), total=80)})
    assert report["hosts_with_more_dumps"] == [{"host": "a", "listed": 1, "total": 80}]
    assert report["hosts"]["a"]["dumps"] == 80
    assert "a lists 1 of its 80 dump dirs." in render_markdown(report)


def test_many_jobs_cap_the_markdown_not_the_json():
    dumps = [dump("dt-%04d-cid-0" % j, "2026-03-01T10:%02d:%02dZ" % (j // 60, j % 60)) for j in range(50)]
    hosts = {"h%03d" % h: result(*dumps) for h in range(300)}
    report = build_report(hosts)
    assert len(report["jobs"]) == 50 and report["jobs"][0]["host_count"] == 300
    assert report["jobs"][0]["job"] == "dt-0049-cid-0"
    assert "300: h000, h001, h002, h003, h004 and 295 more" in render_markdown(report)
