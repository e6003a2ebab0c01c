"""Two jobs on two hosts, end to end into the fleet report's Jobs section.

Each "host" is a bed of its own (instance id, dump root, spool, state) running the real hook
and the real uploader against the session's moto server. Host B's S3 endpoint is dead while
it uploads, so its part of job 1 stays queued. The per-host results handed to the fleet
report are what ``core_dump_info`` returns for ``dumps``: the output of
``neuron-core-dump list --json`` of that host (the module runs the same command). What is
not real here: the Ansible play around it (verify.yml) — the molecule upload scenario runs that.
"""

import json
import os
import shutil
import tempfile
import time

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils.fleet_report import (
    build_report,
    render_markdown,
    summary_lines,
)
from ncd_bed import Bed, fail_job

JOB_1 = "dt-20260301-101500-cid-00000000000000aa"  # on both hosts
JOB_2 = "dt-20260302-080000-cid-00000000000000bb"  # on host A only, newer
HOST_A, HOST_B = "i-000000000000000aa", "i-000000000000000bb"


def _host(lib_dir, moto, iid):
    base = tempfile.mkdtemp(prefix="ncd-fleet-")
    os.chmod(base, 0o755)
    bed = Bed(base, lib_dir, moto)
    with open(bed.iid_file, "w") as handle:
        handle.write(iid + "\n")
    return bed


def _core_dump_info_dumps(bed):
    """The `dumps` part of core_dump_info's result: the host program's own listing."""
    listing = json.loads(bed.run_cli("list", "--json", check=True).stdout)
    return {
        "effective_state": "enabled",
        "drift": [],
        "restart_required": [],
        "dumps": listing["dumps"],
        "dumps_total": listing["total"],
    }


@pytest.fixture
def fleet(lib_dir, moto):
    bucket = moto.new_bucket()
    a, b = _host(lib_dir, moto, HOST_A), _host(lib_dir, moto, HOST_B)
    try:
        yield bucket, a, b
    finally:
        for bed in (a, b):
            shutil.rmtree(bed.base, ignore_errors=True)


def test_two_jobs_on_two_hosts_with_one_pending_make_the_right_jobs_rows(fleet):
    bucket, a, b = fleet
    prefix_1, prefix_2 = ("s3://%s/neuron/%s" % (bucket, job) for job in (JOB_1, JOB_2))
    fail_job(a, a.dump_dir(JOB_1), prefix_1, ranks=2)
    fail_job(b, b.dump_dir(JOB_1), prefix_1, ranks=2)
    time.sleep(1.1)  # a dump's time has whole seconds: job 2 fails a second later
    fail_job(a, a.dump_dir(JOB_2), prefix_2, ranks=1)
    assert a.run_cli("upload", check=True).returncode == 0
    b.write_config({"s3": dict(b.base_config()["s3"], endpoint_url="http://127.0.0.1:9", max_attempts=1)})
    assert b.run_cli("upload").returncode == 1  # S3 down for host B: its dump stays queued
    assert b.queue_entries(), "host B's dump must still be queued"

    results = {"trn-a": _core_dump_info_dumps(a), "trn-b": _core_dump_info_dumps(b)}
    report = build_report(results, expect="enabled")
    jobs = report["jobs"]
    assert [job["job"] for job in jobs] == [JOB_2, JOB_1]  # newest first

    newer, older = jobs
    assert newer["hosts"] == ["trn-a"] and newer["upload_complete"] and newer["uploaded_hosts"] == 1
    assert older["hosts"] == ["trn-a", "trn-b"] and older["host_count"] == 2
    assert older["uploaded_hosts"] == 1 and not older["upload_complete"]
    [pending] = older["pending"]
    assert pending["host"] == "trn-b" and pending["state"] in ("pending", "failed")
    assert "127.0.0.1:9" in pending["reason"] or "connect" in pending["reason"].lower()
    assert [(e["code"], e["name"]) for e in older["errors"]] == [(1006, "NRT_EXEC_OOB")]
    assert older["job_ids"] == {"d": "20260301-101500", "c": "00000000000000aa"}
    assert older["bytes"] == sum(d["bytes"] for r in results.values() for d in r["dumps"] if d["job_key"] == JOB_1)
    # the manifest the report points at is the one the uploader wrote
    [uri] = older["by_host"]["trn-a"]["manifest_uris"]
    assert uri == "s3://%s/neuron/%s/%s-manifest.json" % (bucket, JOB_1, HOST_A)
    key = uri[len("s3://%s/" % bucket) :]
    manifest = json.loads(a.moto.client().get_object(Bucket=bucket, Key=key)["Body"].read())
    assert manifest["instance_id"] == HOST_A

    # the same facts in the play's summary and the Markdown report
    summary = "\n".join(summary_lines(report))
    assert "jobs with dumps: 2 (1 not uploaded from every host)" in summary
    assert "newest failed job: %s" % JOB_2 in summary
    markdown = render_markdown(report)
    assert JOB_1 in markdown and JOB_2 in markdown and "trn-b" in markdown

    # once S3 is back for host B, the job is complete
    b.write_config({})
    assert b.run_cli("upload", check=True).returncode == 0
    report = build_report({"trn-a": _core_dump_info_dumps(a), "trn-b": _core_dump_info_dumps(b)})
    [older] = [job for job in report["jobs"] if job["job"] == JOB_1]
    assert older["upload_complete"] and older["uploaded_hosts"] == 2 and not older["pending"]
