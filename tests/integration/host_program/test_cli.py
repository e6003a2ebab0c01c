"""neuron-core-dump list / info / gc / status / self-test, and the hook on a full disk."""

import json
import os
import subprocess
import time

import pytest
from ncd_bed import INSTANCE_ID

KIB = 1024


def _age(path, seconds):
    """Make a dump look ``seconds`` old (retention orders by the newest mtime inside)."""
    stamp = time.time() - seconds
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            os.utime(os.path.join(dirpath, name), (stamp, stamp))
        os.utime(dirpath, (stamp, stamp))


def _queue_entry(bed, dump_dir, prefix="s3://bucket/p"):
    """A claimed entry still waiting for its upload (as the uploader leaves it after a failure)."""
    os.makedirs(bed.queue, mode=0o700, exist_ok=True)
    entry = {
        "entry": {"dump_dir": dump_dir, "s3_prefix": prefix, "kind": "core", "record": None, "created_ns": 1},
        "uid": 0,
        "claimed_ns": time.time_ns(),
        "attempts": 1,
        "last_error": "S3 unreachable",
    }
    with open(os.path.join(bed.queue, "q-%d.json" % len(os.listdir(bed.queue))), "w") as handle:
        json.dump(entry, handle)


@pytest.fixture
def four_dumps(s3bed):
    """old uploaded A, old local B, old pending C, young uploaded D; 100 KiB each."""
    bed = s3bed
    paths = {}
    for label in "ABCD":
        paths[label] = bed.make_dump("dt-%s" % label, {"%s-data" % INSTANCE_ID: os.urandom(100 * KIB)})
    for label in "AD":
        bed.enqueue(paths[label], "s3://%s/%s" % (bed.bucket, label))
    bed.run_cli("upload", check=True)
    _queue_entry(bed, paths["C"])
    for label, age in (("A", 3000), ("B", 2000), ("C", 1000), ("D", 0)):
        _age(paths[label], age)
    return bed, paths


def _statuses(bed):
    listing = json.loads(bed.run_cli("list", "--json", check=True).stdout)["dumps"]
    return {os.path.basename(d["path"])[3:]: d["status"] for d in listing}


def test_list_classifies_dumps(four_dumps):
    bed, _unused = four_dumps
    assert _statuses(bed) == {"A": "uploaded", "B": "local", "C": "pending", "D": "uploaded"}
    text = bed.run_cli("list", check=True).stdout
    assert "failed" in text and "dt-C" in text  # queued with an error: the upload state says failed


def test_info_shows_files_state_and_records(s3bed):
    bed = s3bed
    dump = bed.dump_dir("dt-info-cid-0")
    bed.run_hook(bed.runtime_argv(dump, device=3, core=1, prefix="s3://%s/i" % bed.bucket))
    bed.run_cli("upload", check=True)
    data = json.loads(bed.run_cli("info", "dt-info-cid-0", "--json", check=True).stdout)
    assert data["status"] == "uploaded"
    assert data["records"][0]["flags"]["device-id"] == "3"
    assert data["s3"]["s3://%s/i" % bed.bucket]["manifest"] == "i/%s-manifest.json" % INSTANCE_ID
    assert bed.run_cli("info", dump, check=True).stdout.startswith(dump)
    missing = bed.run_cli("info", "dt-nope")
    assert missing.returncode == 1 and "no dump" in missing.stderr


def test_gc_soft_cap_deletes_uploaded_then_local_oldest_first(four_dumps):
    bed, paths = four_dumps
    bed.write_config(
        {"retention": {"max_bytes": 250 * KIB, "hard_max_bytes": 1024 * KIB, "min_age_seconds": 60, "max_count": 100}}
    )
    report = json.loads(bed.run_cli("gc", "--json", check=True).stdout)
    assert [os.path.basename(d["path"]) for d in report["deleted"]] == ["dt-A", "dt-B"]
    assert report["hard_cap_deletions"] == []
    assert not os.path.exists(paths["A"]) and not os.path.exists(paths["B"])
    assert os.path.exists(paths["C"]) and os.path.exists(paths["D"])  # pending and young ones stay


def test_gc_dry_run_deletes_nothing(four_dumps):
    bed, paths = four_dumps
    bed.write_config({"retention": {"max_bytes": 0, "hard_max_bytes": 0, "min_age_seconds": 0}})
    report = json.loads(bed.run_cli("gc", "--dry-run", "--json", check=True).stdout)
    assert len(report["deleted"]) == 4
    assert all(os.path.exists(p) for p in paths.values())


def test_gc_count_cap(four_dumps):
    bed, _unused = four_dumps
    bed.write_config({"retention": {"max_count": 3, "min_age_seconds": 60}})
    report = json.loads(bed.run_cli("gc", "--json", check=True).stdout)
    assert [os.path.basename(d["path"]) for d in report["deleted"]] == ["dt-A"]


def test_gc_free_space_floor(four_dumps):
    bed, _unused = four_dumps
    bed.write_config({"retention": {"keep_free_bytes": 10**18, "hard_keep_free_bytes": 0, "min_age_seconds": 60}})
    report = json.loads(bed.run_cli("gc", "--json", check=True).stdout)
    assert [os.path.basename(d["path"]) for d in report["deleted"]] == ["dt-A", "dt-B"]
    assert all("keep_free_bytes" in d["reasons"][0] for d in report["deleted"])


def test_gc_hard_cap_deletes_pending_last_and_says_so_loudly(four_dumps):
    bed, paths = four_dumps
    bed.write_config({"retention": {"max_bytes": 50 * KIB, "hard_max_bytes": 50 * KIB, "min_age_seconds": 60}})
    report = json.loads(bed.run_cli("gc", "--json", check=True).stdout)
    assert [os.path.basename(d["path"]) for d in report["deleted"]] == ["dt-A", "dt-B", "dt-D", "dt-C"]
    assert [os.path.basename(d["path"]) for d in report["hard_cap_deletions"]] == ["dt-C"]
    log = bed.log_text()
    crit = [line for line in log.splitlines() if "<2>" in line]  # LOG_CRIT
    assert len(crit) == 1 and "dt-C BEFORE it was uploaded" in crit[0]
    status = json.loads(bed.run_cli("status", "--json", check=True).stdout)
    assert status["hard_cap_deletions"][0]["path"] == paths["C"]
    assert "before upload" in status["last_error"]
    assert bed.queue_entries() == []  # its queue entry went with it


def test_status_keys_and_storage(four_dumps):
    bed, _unused = four_dumps
    status = json.loads(bed.run_cli("status", "--json", check=True).stdout)
    assert set(status) >= {
        "spool_depth",
        "pending_dumps",
        "last_error",
        "last_success",
        "uploader",
        "storage",
        "config_ok",
    }
    assert status["config_ok"] is True
    assert status["spool_depth"] == 1 and status["pending_dumps"] == 1
    # one failing entry while uploads go through is counted, not "unhealthy" (issue 7: only a broken
    # uploader - credentials, endpoint, every upload failing - makes the host unhealthy)
    assert status["uploader"]["healthy"] is True and "1 entry failing" in status["uploader"]["detail"]
    storage = status["storage"]
    assert storage["count"] == 4 and storage["bytes"] >= 400 * KIB and storage["free_bytes"] > 0
    assert [r["path"] for r in storage["roots"]] == [bed.dumps, bed.vendor_root]
    assert isinstance(status["last_success"], str)
    assert "uploader:" in bed.run_cli("status", check=True).stdout


def test_status_with_an_invalid_config(bed):
    bed.write_config({"uploader": {"trigger": "sometimes"}})
    status = json.loads(bed.run_cli("status", "--json", check=True).stdout)
    assert status["config_ok"] is False and "uploader.trigger" in status["config_error"]
    assert status["uploader"]["healthy"] is False
    proc = bed.run_cli("list")
    assert proc.returncode == 2 and "uploader.trigger: must be one of" in proc.stderr


def test_vendor_default_root_is_listed_and_collected(bed):
    """Dumps written under the runtime's default /tmp/neuron-core-dump (here: vendor_root) are handled too."""
    path = os.path.join(bed.vendor_root, "dt-20250917-194443-cid-0000000000000000")
    os.makedirs(path)
    with open(os.path.join(path, "%s-nd0-nc0-pid-897-tid-897-lid-0" % INSTANCE_ID), "wb") as handle:
        handle.write(b"x" * 4096)
    _age(path, 5000)
    assert _statuses(bed) == {"20250917-194443-cid-0000000000000000": "local"}
    bed.write_config({"retention": {"max_count": 0, "min_age_seconds": 60}})
    bed.run_cli("gc", check=True)
    assert not os.path.exists(path)


def test_self_test_passes_and_cleans_up(s3bed, moto):
    bed = s3bed
    proc = bed.run_cli("self-test", "--json", "--hook", bed.hook, "--s3", "--s3-prefix", "s3://%s/probe" % bed.bucket)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report
    names = {c["name"] for c in report["checks"]}
    assert {"hook file", "per-core call", "runtime-generated call", "runtime file copied", "s3 probe"} <= names
    assert os.listdir(bed.dumps) == []
    assert bed.incoming_entries() == []
    assert moto.client().list_objects_v2(Bucket=bed.bucket).get("KeyCount") == 0
    assert "self-test passed" in bed.run_cli("self-test", "--hook", bed.hook, check=True).stdout


def test_self_test_fails_for_a_foreign_hook(bed, tmp_path):
    fake = tmp_path / "neuron-dump"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    proc = bed.run_cli("self-test", "--hook", str(fake))
    assert proc.returncode == 1 and "not our hook" in proc.stdout


@pytest.fixture
def full_disk(bed):
    mount_point = os.path.join(bed.base, "small")
    os.mkdir(mount_point)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount_point], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % mounted.stderr.decode().strip())
    try:
        root = os.path.join(mount_point, "dumps")
        os.mkdir(root)
        os.chmod(root, 0o1733)
        with open(os.path.join(mount_point, "filler"), "wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass
        yield root
    finally:
        subprocess.run(["umount", "-l", mount_point], check=False)


def test_disk_full_hook_exits_0_within_budget_and_says_why(bed, full_disk):
    bed.write_config({"dump_roots": [full_disk, bed.vendor_root]})
    dump = os.path.join(full_disk, "dt-full-cid-0")
    proc, seconds = bed.run_hook(bed.runtime_argv(dump, prefix="s3://b/p"))
    assert proc.returncode == 0
    assert seconds < 5
    assert b"No space left on device" in proc.stderr
    assert "record: [Errno 28] No space left on device" in bed.log_text()
    assert [n for n in os.listdir(dump) if n.startswith(".")] == []  # no half-written temp file left
    assert len(bed.incoming_entries()) == 1  # the spool is elsewhere: the dump is still queued


def test_upload_applies_retention_afterwards_by_default(s3bed, moto):
    bed = s3bed
    bed.write_config({"retention": {"gc_after_upload": True, "max_count": 0, "min_age_seconds": 0}})
    dump = bed.make_dump("dt-gc-after", {"f": b"x" * 1000})
    _age(dump, 100)
    bed.enqueue(dump, "s3://%s/g" % bed.bucket)
    result = json.loads(bed.run_cli("upload", "--json", check=True).stdout)
    assert result["uploaded_files"] == 1
    assert [d["path"] for d in result["gc"]["deleted"]] == [dump]  # uploaded first, then collected
    assert not os.path.exists(dump)
    assert moto.client().head_object(Bucket=bed.bucket, Key="g/f")["ContentLength"] == 1000


def test_hook_survives_closed_stdio_and_inherited_signal_state(bed):
    """A runtime thread may exec us with SIGALRM blocked, SIGCHLD ignored and stdio closed."""
    import signal

    bed.write_vendor("#!/bin/sh\nexit 3\n")
    dump = bed.dump_dir()

    def hostile_parent_state():
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        for fd in (0, 1, 2):
            os.close(fd)

    proc = subprocess.run([bed.hook, *bed.runtime_argv(dump)], preexec_fn=hostile_parent_state, timeout=30, check=False)
    assert proc.returncode == 0
    (name,) = [n for n in os.listdir(dump) if "-ncd-" in n]
    with open(os.path.join(dump, name)) as handle:
        record = json.load(handle)
    assert record["vendor"]["exit_code"] == 3  # the vendor's status was still collected


# modules `status` must not import: it answers within 200 ms on a saturated host (docs/benchmarks.md
# section 4), so it starts as little Python as it can: no boto3, no argparse, no `re` (and with it
# enum), no site-packages .pth hooks
STATUS_MUST_NOT_IMPORT = ("boto3", "botocore", "argparse", "re", "enum", "json", "_distutils_hack", "sitecustomize")


def _imported_by(bed, *args):
    with open(bed.cli) as handle:
        shebang = handle.readline()[2:].split()
    proc = subprocess.run(
        [shebang[0], "-X", "importtime", *shebang[1:], bed.cli, *args], capture_output=True, text=True, check=True
    )
    json.loads(proc.stdout)
    return {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("deep", [False, True])
def test_status_imports_only_what_it_needs(s3bed, deep):
    bed = s3bed
    count = 260 if deep else 3  # past status.EXACT_LIMIT it answers from the summary, below it walks
    for index in range(count):
        bed.enqueue(bed.make_dump("dt-%04d" % index, {"a": b"1"}), "s3://%s/p%d" % (bed.bucket, index))
    modules = _imported_by(bed, "status", "--json")
    assert "neuron_core_dump.status" in modules
    assert not modules & set(STATUS_MUST_NOT_IMPORT), sorted(modules & set(STATUS_MUST_NOT_IMPORT))
    assert not [m for m in modules if m.startswith(("neuron_core_dump.uploader", "neuron_core_dump.s3"))]
    # the answer still says whether boto3 is importable, without importing it
    status = json.loads(bed.run_cli("status", "--json", check=True).stdout)
    assert "boto3" not in status["uploader"]["detail"]
