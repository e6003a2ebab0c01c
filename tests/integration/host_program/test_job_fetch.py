"""Fetching one job's dump from S3 on the controller (core_dump_job_fetch / playbooks/fetch_job.yml).

The job is made by the real host program: three beds (three "hosts", each its own
instance id, dump root, spool and state), each holding the job's dump dir, each running
`neuron-core-dump upload` against the session's moto server. So the layout in the
bucket (shared job prefix, one manifest per host, a collision key for the file name the
hosts share, name_b64 for a non-UTF-8 name) is the uploader's, not a fixture's. Only the
hostile manifest in test_hostile_manifest_writes_nothing_outside_dest is written by
hand: the uploader never writes one.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils import job_fetch, job_source_s3
from ncd_bed import REPO_ROOT, S3_ENV, Bed

JOB = "dt-20260301-101500-cid-00000000000000aa"
HOSTS = ["i-0000000000000000a", "i-0000000000000000b", "i-0000000000000000c"]
ODD = b"core-\xff\x01.bin"  # not UTF-8, with a control character: name_b64 in the manifest


def _files(iid, index):
    return {
        "%s-nd0-nc0-pid-7" % iid: os.urandom(200_000 + index),
        "%s-nd0-nc1-pid-7.json" % iid: json.dumps({"error_code": 1006, "host": iid}).encode(),
        "nrt.log": ("runtime log of %s\n" % iid).encode() * 50,  # the same name on every host: collision keys
    }


def _host(lib_dir, moto, bucket, iid, index, prefix, extra=None):
    base = tempfile.mkdtemp(prefix="ncd-job-")
    os.chmod(base, 0o755)
    bed = Bed(base, lib_dir, moto)
    with open(bed.iid_file, "w") as handle:
        handle.write(iid + "\n")
    files = {**_files(iid, index), **(extra or {})}
    dump = bed.make_dump(JOB, {k: v for k, v in files.items() if isinstance(k, str)})
    for name, data in files.items():
        if isinstance(name, bytes):
            with open(os.path.join(os.fsencode(dump), name), "wb") as handle:
                handle.write(data)
    bed.enqueue(dump, prefix)
    answer = json.loads(bed.run_cli("upload", "--json", check=True).stdout)
    assert answer["dumps_done"] == 1, answer
    return bed, dump, files


@pytest.fixture
def job(lib_dir, moto):
    bucket = moto.new_bucket()
    prefix = "s3://%s/neuron/%s" % (bucket, JOB)
    hosts = [
        _host(lib_dir, moto, bucket, iid, i, prefix, {ODD: b"odd"} if i == 0 else None) for i, iid in enumerate(HOSTS)
    ]
    yield {"bucket": bucket, "prefix": prefix, "key_prefix": "neuron/" + JOB, "hosts": hosts}
    import shutil

    for bed, _dump, _files_unused in hosts:
        shutil.rmtree(bed.base, ignore_errors=True)


def _fetch(moto, job, dest, **options):
    source = job_source_s3.S3Source(moto.client(), job["bucket"], job["key_prefix"])
    return job_fetch.fetch(source, dest, JOB, **options)


def _tree(root):
    found = {}
    for dirpath, _dirs, names in os.walk(os.fsencode(root)):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, os.fsencode(root))] = hashlib.sha256(handle.read()).hexdigest()
    return found


def _expected(job):
    want = {}
    for (_bed, _dump, files), iid in zip(job["hosts"], HOSTS):
        for name, data in files.items():
            raw = name if isinstance(name, bytes) else name.encode()
            want[iid.encode() + b"/" + raw] = hashlib.sha256(data).hexdigest()
    return want


def test_complete_three_host_job_is_reassembled_byte_identically(job, moto, tmp_path):
    keys = [o["Key"] for o in moto.client().list_objects_v2(Bucket=job["bucket"])["Contents"]]
    assert any("%~c" in key for key in keys), "the shared file name must have gone to a collision key"
    result = _fetch(moto, job, str(tmp_path), expected_hosts=HOSTS, emit=lambda line: None)
    assert result["complete"], result["problems"]
    assert result["problems"] == [] and result["missing_hosts"] == []
    assert [h["host"] for h in result["hosts"]] == HOSTS and result["downloaded_files"] == 10
    tree = _tree(tmp_path / JOB)
    manifests = {k for k in tree if k.endswith(b"-manifest.json")}
    assert manifests == {iid.encode() + b"-manifest.json" for iid in HOSTS}
    assert {k: v for k, v in tree.items() if k not in manifests} == _expected(job)


def test_missing_host_missing_file_and_corrupted_file_are_reported_and_fail(job, moto, tmp_path):
    client = moto.client()
    head = job["key_prefix"] + "/"
    client.delete_object(Bucket=job["bucket"], Key=head + "%s-nd0-nc1-pid-7.json" % HOSTS[1])
    victim = head + "%s-nd0-nc0-pid-7" % HOSTS[2]
    size = len(client.get_object(Bucket=job["bucket"], Key=victim)["Body"].read())
    client.put_object(Bucket=job["bucket"], Key=victim, Body=b"\0" * size)  # same size, other bytes
    result = _fetch(moto, job, str(tmp_path), expected_hosts=[*HOSTS, "i-0000000000000000d"])
    assert not result["complete"]
    assert result["missing_hosts"] == ["i-0000000000000000d"]
    by_host = {h["host"]: h for h in result["hosts"]}
    assert by_host[HOSTS[1]]["missing"] == ["%s-nd0-nc1-pid-7.json" % HOSTS[1]]
    assert [m["name"] for m in by_host[HOSTS[2]]["mismatched"]] == ["%s-nd0-nc0-pid-7" % HOSTS[2]]
    assert "sha256" in by_host[HOSTS[2]]["mismatched"][0]["reason"]
    assert by_host[HOSTS[0]]["complete"]
    # the corrupted bytes were never put in place, nor left as a temporary
    assert not (tmp_path / JOB / HOSTS[2] / ("%s-nd0-nc0-pid-7" % HOSTS[2])).exists()
    assert not [n for n in os.listdir(tmp_path / JOB / HOSTS[2]) if n.startswith(".")]
    assert len(result["problems"]) == 3


def test_a_truncated_or_longer_object_is_a_mismatch_without_reading_past_its_size(job, moto, tmp_path):
    client = moto.client()
    key = job["key_prefix"] + "/%s-nd0-nc0-pid-7" % HOSTS[0]
    client.put_object(Bucket=job["bucket"], Key=key, Body=os.urandom(5_000_000))
    result = _fetch(moto, job, str(tmp_path))
    host = result["hosts"][0]
    assert host["mismatched"][0]["reason"].startswith("object is 5000000 bytes, the manifest says 200000")
    assert not result["complete"]


@pytest.fixture
def small_ranges(monkeypatch):
    """Parts of 64 KiB, so the 200 KB core files of the job go the ranged way (with 16 threads the
    job's fair share per thread, ~38 KB, is below that and the part stays 64 KiB)."""
    monkeypatch.setattr(job_fetch, "RANGE_PART", 64 * 1024)


def test_large_objects_are_fetched_in_ranges_and_verified_whole(job, moto, small_ranges, tmp_path):
    before = len(moto.app.ops(job["bucket"], "GetObject"))
    result = _fetch(moto, job, str(tmp_path), expected_hosts=HOSTS, threads=16)
    assert result["complete"], result["problems"]
    tree = _tree(tmp_path / JOB)
    assert {k: v for k, v in tree.items() if not k.endswith(b"-manifest.json")} == _expected(job)
    gets = moto.app.ops(job["bucket"], "GetObject")[before:]
    core = "%s/%s-nd0-nc0-pid-7" % (job["key_prefix"], HOSTS[1])
    ranges = sorted(g["headers"].get("range") for g in gets if g["key"] == core)
    # 200,001 bytes in 64 KiB parts: four ranges, none past the manifest's size
    assert ranges == ["bytes=0-65535", "bytes=131072-196607", "bytes=196608-200000", "bytes=65536-131071"]
    small = [g for g in gets if g["key"].endswith("nrt.log")]
    assert small and all("range" not in g["headers"] for g in small)


def test_a_part_is_the_fair_share_of_the_threads_when_that_is_larger(job, moto, small_ranges, tmp_path):
    before = len(moto.app.ops(job["bucket"], "GetObject"))
    assert _fetch(moto, job, str(tmp_path), threads=2)["complete"]  # ~300 KB per thread: nothing is split
    gets = moto.app.ops(job["bucket"], "GetObject")[before:]
    assert gets and all("range" not in g["headers"] for g in gets)


def test_a_corrupted_or_shortened_large_object_is_never_put_in_place(job, moto, small_ranges, tmp_path):
    client = moto.client()
    head = job["key_prefix"] + "/"
    corrupted, shortened = (head + "%s-nd0-nc0-pid-7" % iid for iid in HOSTS[1:])
    size = len(client.get_object(Bucket=job["bucket"], Key=corrupted)["Body"].read())
    client.put_object(Bucket=job["bucket"], Key=corrupted, Body=os.urandom(size))  # same size, other bytes
    client.put_object(Bucket=job["bucket"], Key=shortened, Body=os.urandom(100_000))
    result = _fetch(moto, job, str(tmp_path), threads=16)
    by_host = {h["host"]: h for h in result["hosts"]}
    assert "sha256" in by_host[HOSTS[1]]["mismatched"][0]["reason"]
    assert "100000 bytes, the manifest says 200002" in by_host[HOSTS[2]]["mismatched"][0]["reason"]
    assert by_host[HOSTS[0]]["complete"] and not result["complete"]
    for iid in HOSTS[1:]:
        names = os.listdir(tmp_path / JOB / iid)
        assert "%s-nd0-nc0-pid-7" % iid not in names
        assert not [n for n in names if n.startswith(".")], names  # no temporary left behind


def test_resumed_fetch_gets_only_what_is_missing_or_wrong(job, moto, tmp_path):
    assert _fetch(moto, job, str(tmp_path))["complete"]
    host_dir = tmp_path / JOB / HOSTS[1]
    (host_dir / ("%s-nd0-nc0-pid-7" % HOSTS[1])).unlink()
    (host_dir / "nrt.log").write_bytes(b"edited locally")
    (host_dir / ".ncd-fetch-1-deadbeef0000.part").write_bytes(b"left by a killed run")
    before = len(moto.app.ops(job["bucket"], "GetObject"))
    result = _fetch(moto, job, str(tmp_path))
    assert result["complete"] and result["downloaded_files"] == 2 and result["present_files"] == 8
    gets = moto.app.ops(job["bucket"], "GetObject")[before:]
    assert len([g for g in gets if not g["key"].endswith("-manifest.json")]) == 2
    assert not (host_dir / ".ncd-fetch-1-deadbeef0000.part").exists()
    assert _tree(tmp_path / JOB).items() >= _expected(job).items()


def test_check_mode_writes_nothing_and_says_what_it_would_fetch(job, moto, tmp_path):
    result = _fetch(moto, job, str(tmp_path / "new"), check_mode=True)
    assert not (tmp_path / "new").exists()
    assert sum(len(h.get("would_download", [])) for h in result["hosts"]) == 10
    assert result["downloaded_files"] == 0 and not result["complete"]


def test_hostile_manifest_writes_nothing_outside_dest(job, moto, tmp_path):
    """A writer of the job prefix (any node's role may write there) lists hostile names and keys."""
    import base64

    client = moto.client()
    head = job["key_prefix"] + "/"
    body = b"payload"
    digest = hashlib.sha256(body).hexdigest()
    client.put_object(Bucket=job["bucket"], Key=head + "x", Body=body)
    client.put_object(Bucket=job["bucket"], Key="elsewhere/secret", Body=body)

    def item(**fields):
        return dict({"key": head + "x", "size": len(body), "sha256": digest}, **fields)

    manifest = {
        "schema": "neuron-core-dump/manifest/v2",
        "instance_id": "i-evil",
        "files": [
            item(name="../../escaped"),
            item(name="/tmp/absolute"),
            item(name="a/b"),
            item(name="ok", name_b64=base64.b64encode(b"..").decode()),
            item(name="nul", name_b64=base64.b64encode(b"a\0b").decode()),
            item(name=".hidden"),
            item(name="i-evil-manifest.json"),
            item(name="other-job", key="elsewhere/secret"),
            item(name="deeper", key=head + "sub/x"),
            item(name="bad-size", size=-1),
            item(name="fine"),
            item(name="fine"),  # twice
        ],
    }
    client.put_object(Bucket=job["bucket"], Key=head + "i-evil-manifest.json", Body=json.dumps(manifest).encode())
    client.put_object(Bucket=job["bucket"], Key=head + "..-manifest.json", Body=json.dumps(manifest).encode())
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    (dest / JOB).mkdir(parents=True)
    os.symlink(outside, dest / JOB / HOSTS[0])  # a planted link where a host dir goes
    with pytest.raises(job_fetch.FetchError, match="not a directory"):
        _fetch(moto, job, str(dest))
    assert os.listdir(outside) == []
    os.unlink(dest / JOB / HOSTS[0])
    result = _fetch(moto, job, str(dest))
    evil = next(h for h in result["hosts"] if h["host"] == "i-evil")
    assert [r["reason"].split(":")[0].split(" ")[0] for r in evil["rejected"]][:3] == ["name", "name", "name"]
    assert len(evil["rejected"]) == 11 and evil["downloaded"] == 1
    assert os.listdir(dest / JOB / "i-evil") == ["fine"]
    assert [b["key"] for b in result["bad_manifests"]] == [head + "..-manifest.json"]
    assert not result["complete"]
    everything = {os.path.relpath(os.path.join(d, n), tmp_path) for d, _s, ns in os.walk(tmp_path) for n in ns}
    assert all(p.startswith("dest/") for p in everything)
    assert not os.path.exists("/tmp/absolute") and not (tmp_path / "escaped").exists()


def _playbook(moto, *extra, check=False):
    env = dict(os.environ, **S3_ENV)
    env["ANSIBLE_COLLECTIONS_PATH"] = os.path.join(REPO_ROOT, ".bed", "collections")
    env["ANSIBLE_LOCALHOST_WARNING"] = "false"
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "false"
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "neuron_ops.core_dump.fetch_job"]
    argv += ["-e", "neuron_core_dump_s3_endpoint_url=%s" % moto.url, "-e", "neuron_core_dump_s3_addressing_style=path"]
    argv += ["-e", "neuron_core_dump_fetch_progress_interval=0.001", *extra]
    if check:
        argv.append("--check")
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_playbook_fetches_from_a_fleet_report_row_and_exits_non_zero_when_incomplete(job, moto, tmp_path):
    report = {
        "jobs": [
            {
                "job": JOB,
                "by_host": dict(
                    {
                        "trn-%d" % i: {
                            "state": "uploaded",
                            "reason": None,
                            "manifest_uris": ["%s/%s-manifest.json" % (job["prefix"], iid)],
                        }
                        for i, iid in enumerate(HOSTS)
                    },
                    **{"trn-9": {"state": "pending", "reason": "S3 unreachable", "manifest_uris": []}},
                ),
            }
        ]
    }
    path = tmp_path / "fleet-report.json"
    path.write_text(json.dumps(report))
    dest = tmp_path / "dumps"
    args = ["-e", "neuron_core_dump_job=%s" % JOB, "-e", "neuron_core_dump_fleet_report=%s" % path]
    args += ["-e", "neuron_core_dump_fetch_dest=%s" % dest]
    proc = _playbook(moto, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "host trn-9: no manifest (pending per the fleet report: S3 unreachable)" in proc.stdout
    assert "files," in proc.stdout and "MiB/s" in proc.stdout  # the progress line
    assert _tree(dest / JOB).items() >= _expected(job).items()
    # without the pending host the same job is complete: exit 0, nothing fetched again
    proc = _playbook(moto, "-e", "neuron_core_dump_job_prefix=%s" % job["prefix"], *args[4:])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "10 files from 3 host(s) verified" in proc.stdout and "changed=0" in proc.stdout


def test_bad_arguments_are_refused_with_a_clear_message(moto, tmp_path):
    proc = _playbook(
        moto, "-e", "neuron_core_dump_job_prefix=s3://Bad_Bucket/x", "-e", "neuron_core_dump_fetch_dest=%s" % tmp_path
    )
    assert proc.returncode == 2 and "invalid job location" in proc.stdout
    proc = _playbook(moto, "-e", "neuron_core_dump_fetch_dest=%s" % tmp_path)
    assert proc.returncode == 2 and "one of the following is required" in proc.stdout
    assert os.listdir(tmp_path) == []
