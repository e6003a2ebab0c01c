"""End to end on each host: a non-root workload started from a login session fails on
2 ranks x 2 cores; the vendor files and our records land in the configured local dir
and all of them reach the bed's S3, encrypted and byte for byte, with the manifest. Then
the dump as data: core_dump_info (run by real ansible over the podman connection) and
``neuron-core-dump list`` name the job and its NRT error, the notify command got exactly one
message as its unprivileged user, the journal holds the entry with the fixed MESSAGE_ID, and
verify.yml's fleet report names the job in its Jobs section."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time

import pytest
from bedtest import (
    HOOK,
    STAND_IN_IN_HOST,
    fake_instance_id,
    hook_calls,
    run_as_login,
    s3_client,
    split_s3_url,
)

WORKLOAD_USER = "trainer"
UPLOAD_DEADLINE_SECONDS = 120
NOTIFY_DIR = "/var/tmp/ncd-notify"  # what prepare.yml's notify command writes
MESSAGE_ID = "3b3fa714a115419c820e95de66c4546c"  # docs/operations.md
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture(scope="module")
def failure(host, stand_in):
    """Run the stand-in once per host and return (report, instance id)."""
    del stand_in  # the fixture copies the stand-in into the container
    host.run_expect([0], "id %s || useradd --create-home %s" % (WORKLOAD_USER, WORKLOAD_USER))
    iid = fake_instance_id(host)
    result = run_as_login(
        host,
        WORKLOAD_USER,
        "python3 %s --report - --ranks 2 --cores 0:0,0:1 --instance-id %s" % (STAND_IN_IN_HOST, iid),
    )
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout), iid


def wait_for_manifest(s3, bucket: str, key_prefix: str, iid: str) -> dict:
    manifest_key = "%s/%s-manifest.json" % (key_prefix, iid)
    deadline = time.monotonic() + UPLOAD_DEADLINE_SECONDS
    while True:
        try:
            return json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            if time.monotonic() > deadline:
                raise AssertionError("no %s after %d s" % (manifest_key, UPLOAD_DEADLINE_SECONDS)) from None
            time.sleep(1)


def local_sha256(host, dump_dir: str) -> dict:
    listing = host.check_output("cd %s && find . -maxdepth 1 -type f -printf '%%f\\n' | sort" % dump_dir)
    return {
        name: host.check_output("sha256sum %s/%s" % (dump_dir, name)).split()[0] for name in listing.split("\n") if name
    }


def test_settings_reach_the_login_session(failure):
    report, _iid = failure
    assert report["gate"]["enabled"], report["gate"]
    assert report["gate"]["local_template"] == "/var/lib/neuron-core-dump/dumps/dt-%d-cid-%c"
    assert report["gate"]["s3_template"] == "s3://ncd-bed-dumps/fleet/dt-%d-cid-%c"


def test_every_rank_and_core_called_the_hook_into_one_dir(failure):
    report, _iid = failure
    calls = hook_calls(report)
    assert len(report["ranks"]) == 2
    assert sorted(call["kind"] for call in calls) == ["core"] * 4 + ["runtime-generated"] * 2
    assert len({call["local_output_dir"] for call in calls}) == 1
    assert all(call["exit_status"] == 0 for call in calls)


def test_everything_reaches_s3_encrypted_and_byte_identical(host, failure):
    report, iid = failure
    call = hook_calls(report)[0]
    dump_dir, prefix = call["local_output_dir"], call["s3_output_prefix"]
    bucket, key_prefix = split_s3_url(prefix)
    s3 = s3_client()
    manifest = wait_for_manifest(s3, bucket, key_prefix, iid)

    local = local_sha256(host, dump_dir)
    vendor = [name for name in local if re.fullmatch(r"i-[0-9a-f]+-nd\d+-nc\d+-pid-\d+-tid-\d+-lid-\d+", name)]
    records = [name for name in local if name.endswith(".json") and "-ncd-" in name]
    assert len(vendor) == 4, local
    assert len(records) == 6, local
    assert len([name for name in local if name.endswith(".log")]) == 2, local

    for name, digest in local.items():
        obj = s3.get_object(Bucket=bucket, Key="%s/%s" % (key_prefix, name))
        assert obj["ServerSideEncryption"] == "AES256", name
        assert hashlib.sha256(obj["Body"].read()).hexdigest() == digest, name
    manifest_files = json.dumps(manifest)
    for name, digest in local.items():
        assert digest in manifest_files, "%s missing from the manifest" % name


def test_dump_dir_keeps_other_users_out(host, failure):
    report, _iid = failure
    dump_dir = hook_calls(report)[0]["local_output_dir"]
    assert host.file(dump_dir).user == WORKLOAD_USER
    assert host.file(dump_dir).mode & 0o077 == 0
    assert host.file("/var/lib/neuron-core-dump/dumps").mode == 0o1733
    assert host.file(HOOK).mode == 0o755


# --- the dump as data, and the notification ---------------------------------------------------------


def _uploaded(host, failure):
    report, iid = failure
    call = hook_calls(report)[0]
    bucket, key_prefix = split_s3_url(call["s3_output_prefix"])
    wait_for_manifest(s3_client(), bucket, key_prefix, iid)
    return call["local_output_dir"], "s3://%s/%s/%s-manifest.json" % (bucket, key_prefix, iid)


def _ansible(host, program, *args, json_output=False):
    """Real ansible (or ansible-playbook) against the container over the podman connection."""
    # Not molecule's ansible.cfg: its profile_tasks callback prints timings before the JSON.
    env = {name: value for name, value in os.environ.items() if name != "ANSIBLE_CONFIG"}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO_ROOT, ".bed", "collections"),
        ANSIBLE_PYTHON_INTERPRETER="auto_silent",
    )
    if json_output:
        env.update(ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), program), "-i", "%s," % host.backend.name,
         "-c", "containers.podman.podman", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def core_dump_info(host, **args):
    """The module on the container, by real ansible over the podman connection."""
    out = _ansible(host, "ansible", "all", "-m", "neuron_ops.core_dump.core_dump_info", "-a", json.dumps(args),
                   json_output=True)  # fmt: skip
    return json.loads(out)["plays"][0]["tasks"][0]["hosts"][host.backend.name]


def test_core_dump_info_names_the_job_and_its_error(host, failure):
    dump_dir, manifest_uri = _uploaded(host, failure)
    result = core_dump_info(host, dumps_limit=5, scan_processes=False)
    assert result["dumps_error"] is None and result["dumps_total"] >= 1
    [dump] = [d for d in result["dumps"] if d["path"] == dump_dir]
    assert dump["job_key"] == os.path.basename(dump_dir) and dump["job_source"] == "record"
    assert (dump["error_code"], dump["error_name"]) == (1006, "NRT_EXEC_OOB")
    assert len(dump["pids"]) == 2 and dump["devices"] == [0] and dump["cores"] == [0, 1]
    assert dump["origin"] == {"kind": "host", "uid": int(host.check_output("id -u %s" % WORKLOAD_USER)),
                              "user": WORKLOAD_USER}  # fmt: skip
    assert dump["upload"] == {"state": "uploaded", "last_error": None, "manifest_uri": manifest_uri}
    listed = json.loads(host.check_output("neuron-core-dump list --json"))["dumps"]
    assert [d["job_key"] for d in listed if d["path"] == dump_dir] == [dump["job_key"]]


def test_the_notify_command_got_one_message_as_its_user(host, failure):
    dump_dir, manifest_uri = _uploaded(host, failure)
    deadline = time.monotonic() + 60
    while not host.run("ls %s/*.json" % NOTIFY_DIR).stdout.strip() and time.monotonic() < deadline:
        time.sleep(1)
    names = host.check_output("ls %s/*.json" % NOTIFY_DIR).split()
    assert len(names) == 1, names  # one dump, one message, even after idempotence and re-runs
    uid, _nl, body = host.check_output("cat %s" % names[0]).partition("\n")
    assert int(uid) == int(host.check_output("id -u ncd-notify"))
    message = json.loads(body)
    assert message["path"] == dump_dir and message["manifest_uri"] == manifest_uri
    assert message["error_name"] == "NRT_EXEC_OOB" and message["upload"]["state"] == "uploaded"


def test_the_journal_entry_has_the_fixed_message_id(host, failure):
    dump_dir, manifest_uri = _uploaded(host, failure)
    deadline = time.monotonic() + 30
    while True:
        out = host.run("journalctl --no-pager -o json MESSAGE_ID=%s" % MESSAGE_ID).stdout
        entries = [json.loads(line) for line in out.splitlines() if line.strip()]
        if entries or time.monotonic() > deadline:
            break
        time.sleep(1)
    [entry] = [e for e in entries if e.get("NCD_DUMP_DIR") == dump_dir]
    assert entry["NCD_JOB_KEY"] == os.path.basename(dump_dir) and entry["NCD_ERROR_NAME"] == "NRT_EXEC_OOB"
    assert entry["NCD_MANIFEST_URI"] == manifest_uri and entry["PRIORITY"] == "5"


def test_the_fleet_reports_jobs_section_names_the_failed_job(host, failure, tmp_path):
    dump_dir, manifest_uri = _uploaded(host, failure)
    report_dir = "neuron_core_dump_report_dir=%s" % tmp_path
    out = _ansible(host, "ansible-playbook", "neuron_ops.core_dump.verify", "-e", report_dir)
    with open(tmp_path / "fleet-report.json", encoding="utf-8") as handle:
        jobs = json.load(handle)["jobs"]
    job_key = os.path.basename(dump_dir)
    [row] = [job for job in jobs if job["job"] == job_key]
    assert row["hosts"] == [host.backend.name] and row["upload_complete"]
    assert [(e["code"], e["name"]) for e in row["errors"]] == [(1006, "NRT_EXEC_OOB")]
    assert row["by_host"][host.backend.name]["manifest_uris"] == [manifest_uri]
    assert "newest failed job: %s" % job_key in out
    assert job_key in (tmp_path / "fleet-report.md").read_text(encoding="utf-8")
