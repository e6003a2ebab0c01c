"""Issue 7, uploader side: every dump arrives intact and only where it belongs.

Real hook and ``neuron-core-dump`` processes, real users (``os.setuid`` in the hook's
child), real boto3 against the session's moto server (moto 5.2.5, see
requirements/requirements.txt).

What the moto server proves about conditional writes: moto 5.2.5 answers 412 to
``If-None-Match: *`` on PutObject *and* on CompleteMultipartUpload when the key
exists (moto/s3/responses.py, ``PreconditionFailed("If-None-Match")`` in both
paths), and honours ``If-Match`` on PutObject; the multipart test below checks the
412 on CompleteMultipartUpload in the request log, so both uploaders' conditional
paths are exercised against a server that really refuses, not merely sent.
What it does not prove: S3's atomicity of the check under true concurrency (moto
checks, then writes); the uploaders' per-dump flock covers that on one host.
"""

import base64
import json
import os
import re
import stat
import subprocess
import time

import pytest
from ncd_bed import INSTANCE_ID, NOBODY, object_sha256, sha256_file

USER_B = 61001  # a second unprivileged uid (no passwd entry needed for setuid)
MIB = 1024 * 1024
# the vendor stand-in writes its hardware-state file; its bytes name the writing uid, so
# two users' files of the same name differ
VENDOR = (
    "#!/bin/sh\nwhile [ $# -gt 0 ]; do case $1 in --local-output-dir) d=$2;; --pid) p=$2;; esac; shift; done\n"
    'echo "hardware state written by uid $(id -u)" > "$d/%s-nd0-nc0-pid-$p"\nexit 0\n' % INSTANCE_ID
)


def _objects(moto, bucket, prefix=""):
    client = moto.client()
    listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}


def _manifests(objects):
    return {k: json.loads(v) for k, v in objects.items() if k.endswith("-manifest.json")}


def _hook_as(bed, uid, dump, prefix, pid=100):
    proc, _unused = bed.run_hook(bed.runtime_argv(dump, pid=pid, tid=pid, prefix=prefix), user=uid)
    assert proc.returncode == 0, proc.stderr


def _upload(bed, *extra):
    return json.loads(bed.run_cli("upload", "--json", *extra, check=True).stdout)


def _strict_json(text):
    """Parse like a strict consumer (Ansible refuses lone surrogates): fails on any unescaped odd name."""
    data = json.loads(text)
    json.dumps(data, ensure_ascii=False).encode("utf-8")  # raises UnicodeEncodeError on surrogates
    return data


# --- 1. no overwrite across users -----------------------------------------------------------------


def test_user_b_naming_user_a_prefix_changes_nothing_of_a(s3bed, moto):
    bed = s3bed
    bed.write_vendor(VENDOR)
    prefix = "s3://%s/neuron/dt-1-cid-0" % bed.bucket
    dump_a = bed.dump_dir("dt-1-cid-0")
    _hook_as(bed, NOBODY, dump_a, prefix)
    _upload(bed)
    before = _objects(moto, bed.bucket)
    manifest_a = "neuron/dt-1-cid-0/%s-manifest.json" % INSTANCE_ID
    assert manifest_a in before and len(before) == 3  # vendor file, record, manifest
    # B: its own dir, A's prefix, files named exactly like A's
    dump_b = bed.dump_dir("dt-b-own")
    _hook_as(bed, USER_B, dump_b, prefix)
    vendor_file = "%s-nd0-nc0-pid-100" % INSTANCE_ID
    assert vendor_file in os.listdir(dump_a) and vendor_file in os.listdir(dump_b)
    result = _upload(bed)
    assert result["dumps_done"] == 1 and result["errors"] == []
    after = _objects(moto, bed.bucket)
    for key, body in before.items():
        assert after[key] == body, "%s was changed" % key  # A's objects and manifest byte-identical
    manifests = _manifests(after)
    assert len(manifests) == 2
    ((key_b, manifest_b),) = [(k, m) for k, m in manifests.items() if k != manifest_a]
    assert manifest_b["owner"]["uid"] == USER_B and manifest_b["dump_dir"] == dump_b
    # who produced what: the dir's owner (no passwd entry: the uid as text) and the host
    assert manifest_b["owner"]["user"] == str(USER_B) and manifest_b["host"]["instance_id"] == INSTANCE_ID
    assert manifest_b["entry_uid"] == USER_B and manifest_b["host"]["hostname"]
    assert manifest_a not in key_b and key_b.endswith("-manifest.json")
    assert {f["name"] for f in manifest_b["files"]} == set(os.listdir(dump_b))
    for item in manifest_b["files"]:
        assert item["owner_uid"] == USER_B
        with open(os.path.join(dump_b, item["name"]), "rb") as handle:
            assert after[item["key"]] == handle.read()
    (vendor_b,) = [f for f in manifest_b["files"] if f["name"] == vendor_file]
    assert "%~c" in vendor_b["key"] and vendor_b["collision"]["key"] in before  # ours went elsewhere, both listed
    assert "uid %d" % NOBODY in vendor_b["collision"]["owner"]
    log = bed.log_text()
    assert "already holds other bytes, written by uid %d" % NOBODY in log and "ours (uid %d" % USER_B in log


def test_multipart_collision_is_refused_by_complete_and_goes_to_its_own_key(s3bed, moto):
    """CompleteMultipartUpload with If-None-Match: moto answers 412; A's object stays, B's is kept too."""
    bed = s3bed
    prefix = "s3://%s/big" % bed.bucket
    name = "%s-nd0-nc0-pid-1-big" % INSTANCE_ID
    payload_a, payload_b = os.urandom(9 * MIB), os.urandom(9 * MIB)
    dump_a = bed.make_dump("dt-big-a", {name: payload_a})
    dump_b = bed.make_dump("dt-big-b", {name: payload_b})
    for dump, uid in ((dump_a, NOBODY), (dump_b, USER_B)):
        for path in (dump, os.path.join(dump, name)):
            os.chown(path, uid, uid)
    bed.enqueue(dump_a, prefix, uid=NOBODY)
    _upload(bed)
    bed.enqueue(dump_b, prefix, uid=USER_B)
    _upload(bed)
    completes = moto.app.ops(bed.bucket, "CompleteMultipartUpload", ok_only=False)
    assert [r["status"] for r in completes if r["key"] == "big/" + name].count(412) == 1
    assert all(r["headers"].get("if-none-match") == "*" for r in completes)
    objects = _objects(moto, bed.bucket)
    assert objects["big/" + name] == payload_a
    (other,) = [k for k in objects if k.startswith("big/" + name + "%~c")]
    assert objects[other] == payload_b


def test_same_bytes_already_there_count_as_done(s3bed, moto):
    bed = s3bed
    dump = bed.make_dump("dt-same", {"a": b"same bytes"})
    moto.client().put_object(Bucket=bed.bucket, Key="same/a", Body=b"same bytes")
    bed.enqueue(dump, "s3://%s/same" % bed.bucket)
    result = _upload(bed)
    assert result["dumps_done"] == 1
    assert not [k for k in _objects(moto, bed.bucket) if "%~c" in k]


# --- 2. colliding paths ------------------------------------------------------------------------------


def test_four_local_dirs_on_one_prefix_lose_nothing(s3bed, moto):
    """local_dir %d-%c-%i-%p with s3_prefix dt-%d-cid-%c, forced past the module: 4 ranks, one prefix."""
    bed = s3bed
    prefix = "s3://%s/neuron/dt-1-cid-0" % bed.bucket
    local = {}
    for rank in range(4):
        files = {
            "%s-nd%d-nc0-pid-%d" % (INSTANCE_ID, rank, 700 + rank): os.urandom(1000),
            "common-name.log": ("rank %d\n" % rank).encode(),  # same name, different bytes in every dir
        }
        dump = bed.make_dump("dt-1-cid-0-%s-%d" % (INSTANCE_ID, 700 + rank), files)
        local[dump] = files
        bed.enqueue(dump, prefix)
    result = _upload(bed)
    assert result["dumps_done"] == 4 and result["errors"] == []
    objects = _objects(moto, bed.bucket)
    manifests = _manifests(objects)
    assert len(manifests) == 4
    assert {m["dump_dir"] for m in manifests.values()} == set(local)
    for manifest in manifests.values():
        files = local[manifest["dump_dir"]]
        assert {f["name"] for f in manifest["files"]} == set(files)
        for item in manifest["files"]:
            assert objects[item["key"]] == files[item["name"]]
    assert len([k for k in objects if not k.endswith("-manifest.json")]) == 8


def test_one_dir_reached_with_two_prefixes_goes_to_the_first_only(s3bed, moto):
    """%p only in the prefix: the dir is uploaded once, under the first prefix; the other is listed."""
    bed = s3bed
    dump = bed.make_dump("dt-rev", {"a": b"1", "b": b"2"})
    first, second = "s3://%s/job/p1" % bed.bucket, "s3://%s/job/p2" % bed.bucket
    bed.enqueue(dump, first)
    time.sleep(0.01)
    bed.enqueue(dump, second)
    assert _upload(bed)["dumps_done"] == 1
    bed.enqueue(dump, second)  # later calls with the other prefix change nothing either
    _upload(bed)
    objects = _objects(moto, bed.bucket)
    assert sorted(objects) == sorted(["job/p1/%s-manifest.json" % INSTANCE_ID, "job/p1/a", "job/p1/b"])
    assert _manifests(objects)["job/p1/%s-manifest.json" % INSTANCE_ID]["also_requested_prefixes"] == [second]


# --- 3. any name ---------------------------------------------------------------------------------------


def test_odd_names_upload_and_reports_stay_parseable(s3bed, moto):
    bed = s3bed
    long_prefix = "odd/" + "p" * 500
    dump = bed.make_dump("dt-odd", {"plain": b"plain"})
    odd = {
        b"bad-\xff\xfe.bin": b"not utf-8",
        b"ctl-\x01\x1b[31m-\n.bin": b"control characters",
        b"\xc3\xa9" * 120: b"too long once encoded",  # 240 bytes -> 1,440 key chars: cut + hashed
    }
    for raw, data in odd.items():
        path = os.fsencode(dump) + b"/" + raw
        with open(path, "wb") as handle:
            handle.write(data)
    os.mkfifo(os.path.join(dump, "a-fifo"))
    os.symlink("/etc/passwd", os.path.join(dump, "a-link"))
    bed.enqueue(dump, "s3://%s/%s" % (bed.bucket, long_prefix))
    result = _upload(bed)
    assert result["dumps_done"] == 1 and result["errors"] == [] and bed.queue_entries() == []
    objects = _objects(moto, bed.bucket)
    (manifest,) = _manifests(objects).values()
    by_bytes = {}
    for item in manifest["files"]:
        raw = base64.b64decode(item["name_b64"]) if "name_b64" in item else item["name"].encode()
        by_bytes[raw] = item
        assert len(item["key"].encode()) <= 1024
        assert objects[item["key"]] == (odd.get(raw) or b"plain")
    assert set(by_bytes) == set(odd) | {b"plain"}
    assert by_bytes[b"bad-\xff\xfe.bin"]["name"] == "bad-\\xff\\xfe.bin"
    assert by_bytes[b"bad-\xff\xfe.bin"]["key"].endswith("/bad-%FF%FE.bin")
    assert "%~n" in by_bytes[b"\xc3\xa9" * 120]["key"]
    skipped = {s["name"]: s["reason"] for s in manifest["skipped"]}
    assert skipped == {"a-fifo": "not a regular file", "a-link": "symlink: not followed"}
    # every report that carries names answers, in strict JSON
    status = _strict_json(bed.run_cli("status", "--json", check=True).stdout)
    assert status["uploader"]["healthy"] is True
    listing = _strict_json(bed.run_cli("list", "--json", check=True).stdout)["dumps"]
    assert [d["status"] for d in listing if d["path"] == dump] == ["uploaded"]
    info = _strict_json(bed.run_cli("info", dump, "--json", check=True).stdout)
    assert "bad-\\xff\\xfe.bin" in {f["name"] for f in info["file_list"]}
    assert "bad-" in bed.run_cli("info", dump, check=True).stdout
    # a dump dir whose own name is not UTF-8 does not break list either
    os.mkdir(os.fsencode(bed.dumps) + b"/dt-\xff")
    listing = _strict_json(bed.run_cli("list", "--json", check=True).stdout)["dumps"]
    assert "dt-\\xff" in {d["name"] for d in listing}


# --- 6. root decides where root writes -----------------------------------------------------------------


def test_prefixes_buckets_and_uids_outside_policy_are_refused_and_host_stays_healthy(s3bed, moto):
    bed = s3bed
    bed.write_config(
        {"s3": {"allowed_prefixes": ["s3://%s/neuron" % bed.bucket]}, "uploader": {"allowed_uids": [0, NOBODY]}}
    )
    allowed = bed.make_dump("dt-ok", {"a": b"ok"})
    bed.enqueue(allowed, "s3://%s/neuron/dt-ok" % bed.bucket)
    refused = {
        "other-prefix": "s3://%s/elsewhere/x" % bed.bucket,
        "boundary": "s3://%s/neuronX/x" % bed.bucket,
        "dotdot": "s3://%s/neuron/../elsewhere" % bed.bucket,
        "other-bucket": "s3://%s/neuron/x" % moto.new_bucket(),
    }
    for label, prefix in refused.items():
        bed.enqueue(bed.make_dump("dt-" + label, {"a": label.encode()}), prefix)
    foreign = bed.make_dump("dt-uid", {"a": b"uid"})
    for path in (foreign, os.path.join(foreign, "a")):
        os.chown(path, USER_B, USER_B)
    bed.enqueue(foreign, "s3://%s/neuron/uid" % bed.bucket, uid=USER_B)
    result = _upload(bed)
    assert result["dumps_done"] == 1 and result["entries_refused"] == 5 and result["dumps_failed"] == 0
    assert sorted(_objects(moto, bed.bucket)) == sorted(
        ["neuron/dt-ok/%s-manifest.json" % INSTANCE_ID, "neuron/dt-ok/a"]
    )
    assert bed.queue_entries() == []
    for label in refused:
        assert os.path.exists(os.path.join(bed.dump_dir("dt-" + label), "a"))  # kept local
    status = json.loads(bed.run_cli("status", "--json", check=True).stdout)
    assert status["uploader"]["healthy"] is True, status["uploader"]
    assert status["refused"]["total"] == 5 and "refused" in status["uploader"]["detail"]
    reasons = " ".join(r["reason"] for r in status["refused"]["recent"])
    assert "allowed_prefixes" in reasons and "'..'" in reasons and "allowed_uids" in reasons


def test_a_bucket_that_does_not_exist_does_not_make_the_host_unhealthy(s3bed, moto):
    bed = s3bed
    good = bed.make_dump("dt-good", {"a": b"1"})
    missing = bed.make_dump("dt-missing", {"a": b"2"})
    bed.enqueue(missing, "s3://ncd-no-such-bucket-here/x")
    bed.enqueue(good, "s3://%s/good" % bed.bucket)
    result = _upload(bed)
    assert result["dumps_done"] == 1 and result["entries_refused"] == 1
    status = json.loads(bed.run_cli("status", "--json", check=True).stdout)
    assert status["uploader"]["healthy"] is True and status["pending_dumps"] == 0
    assert "NoSuchBucket" in status["refused"]["recent"][-1]["reason"]
    assert os.path.exists(os.path.join(missing, "a"))


def _capture_config(**extra):
    capture = {
        "enabled": True,
        "commands": [{"name": "klog", "argv": ["/bin/echo", "kernel line only root may read"], "timeout_seconds": 5}],
    }
    capture.update(extra)
    return {"capture": capture}


def _readable_by(uid, path):
    proc = subprocess.run(
        ["/bin/cat", path],
        preexec_fn=lambda: (os.setgid(uid), os.setgroups([]), os.setuid(uid)),
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


@pytest.mark.parametrize("readable", [False, True])
def test_capture_output_is_roots_unless_configured(s3bed, moto, readable):
    bed = s3bed
    bed.write_config(_capture_config(readable_by_owner=readable))
    dump = bed.dump_dir("dt-cap")
    _hook_as(bed, NOBODY, dump, "s3://%s/cap" % bed.bucket)
    _upload(bed)
    path = os.path.join(dump, "%s-extra-klog.txt" % INSTANCE_ID)
    info = os.lstat(path)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == (NOBODY if readable else 0)
    assert _readable_by(NOBODY, path) is readable
    assert object_sha256(moto.client(), bed.bucket, "cap/" + os.path.basename(path)) == sha256_file(path)


def test_the_uploader_never_waits_for_its_own_capture_files(s3bed, moto):
    """Today's code deferred the dump for settle_seconds because of the files it had just written."""
    bed = s3bed
    bed.write_config(dict(_capture_config(), uploader={"settle_seconds": 30}))
    dump = bed.make_dump("dt-own", {"a": b"1"})
    old = time.time() - 120
    os.utime(os.path.join(dump, "a"), (old, old))
    bed.enqueue(dump, "s3://%s/own" % bed.bucket)
    result = _upload(bed)
    assert result["dumps_done"] == 1 and result["dumps_deferred"] == 0 and result["uploaded_files"] == 2


def test_extra_capture_is_rate_limited_per_host(s3bed, moto):
    bed = s3bed
    bed.write_config(_capture_config(min_interval_seconds=3600))
    for name in ("dt-c1", "dt-c2", "dt-c3"):
        bed.enqueue(bed.make_dump(name, {"a": b"1"}), "s3://%s/%s" % (bed.bucket, name))
    _upload(bed)
    captured = [n for n in ("dt-c1", "dt-c2", "dt-c3") if any("-extra-" in f for f in os.listdir(bed.dump_dir(n)))]
    assert len(captured) == 1


# --- 4. fair and bounded ---------------------------------------------------------------------------------


def _own(path, uid):
    os.chown(path, uid, uid)
    for name in os.listdir(path):
        os.chown(os.path.join(path, name), uid, uid)


def test_spool_is_served_round_robin_across_uids(s3bed, moto):
    bed = s3bed
    bed.write_config({"uploader": {"max_parallel_dumps": 1}})
    for index in range(12):
        dump = bed.make_dump("dt-a-%02d" % index, {"f": b"x" * 100})
        _own(dump, NOBODY)
        bed.enqueue(dump, "s3://%s/a%02d" % (bed.bucket, index), uid=NOBODY)
    victim = bed.make_dump("dt-0-victim", {"f": b"v"})  # sorts first by path, arrives last
    _own(victim, USER_B)
    time.sleep(0.01)
    bed.enqueue(victim, "s3://%s/victim" % bed.bucket, uid=USER_B)
    assert _upload(bed)["dumps_done"] == 13
    manifests = [r["key"].split("/")[0] for r in moto.app.ops(bed.bucket, "PutObject") if "manifest" in r["key"]]
    assert manifests.index("victim") <= 1, manifests


def test_per_uid_pending_limit_holds_the_rest_and_resumes(s3bed, moto):
    bed = s3bed
    bed.write_config({"uploader": {"max_pending_dumps_per_uid": 2}})
    for index in range(5):
        bed.enqueue(bed.make_dump("dt-l%d" % index, {"f": b"1"}), "s3://%s/l%d" % (bed.bucket, index))
    first = _upload(bed)
    assert first["dumps_done"] == 2 and first["dumps_held"] == 3
    status = json.loads(bed.run_cli("status", "--json", check=True).stdout)
    assert status["uploader"]["healthy"] is True and status["held_dumps"] == 3
    assert _upload(bed, "--wait")["dumps_done"] == 3  # --wait goes on while the limit lets more through
    assert bed.queue_entries() == []


def test_byte_quota_holds_only_that_uid_and_its_dumps_resume(s3bed, moto):
    """max_bytes_per_uid_per_hour: past it a uid's dumps stay local and queued (counted, host healthy),
    other uids go on, and they go once the quota allows (here: raised; in service: the hour passes)."""
    bed = s3bed
    bed.write_config({"uploader": {"max_bytes_per_uid_per_hour": 1000}})
    first = bed.make_dump("dt-q-first", {"f": os.urandom(1500)})
    _own(first, NOBODY)
    bed.enqueue(first, "s3://%s/q/first" % bed.bucket, uid=NOBODY)
    assert _upload(bed)["dumps_done"] == 1  # under the quota when the pass began
    later = bed.make_dump("dt-q-later", {"f": os.urandom(500)})
    _own(later, NOBODY)
    other = bed.make_dump("dt-q-other", {"f": os.urandom(500)})
    _own(other, USER_B)
    bed.enqueue(later, "s3://%s/q/later" % bed.bucket, uid=NOBODY)
    bed.enqueue(other, "s3://%s/q/other" % bed.bucket, uid=USER_B)
    held = _upload(bed)
    assert held["dumps_done"] == 1 and held["dumps_held"] == 1 and held["errors"] == []
    objects = _objects(moto, bed.bucket)
    assert any(k.startswith("q/other/") for k in objects) and not any(k.startswith("q/later/") for k in objects)
    assert [q["entry"]["dump_dir"] for q in bed.queue_entries()] == [later]  # kept, not dropped
    status = json.loads(bed.run_cli("status", "--json", check=True).stdout)
    assert status["uploader"]["healthy"] is True and status["held_dumps"] == 1
    assert "held by the per-uid limits" in status["uploader"]["detail"]
    bed.write_config({"uploader": {"max_bytes_per_uid_per_hour": 10**9}})
    assert _upload(bed)["dumps_done"] == 1 and bed.queue_entries() == []
    assert any(k.startswith("q/later/") for k in _objects(moto, bed.bucket))


def test_hard_cap_never_evicts_another_users_pending_dump_for_a_flood(s3bed, moto):
    bed = s3bed
    bed.write_config(
        {
            "uploader": {"max_pending_dumps_per_uid": 2},
            "retention": {"max_bytes": 0, "hard_max_bytes": 250 * 1024, "min_age_seconds": 0},
        }
    )
    victim = bed.make_dump("dt-victim", {"f": os.urandom(100 * 1024)})
    _own(victim, USER_B)
    old = time.time() - 3600  # the oldest dump: oldest-first eviction would take it
    os.utime(os.path.join(victim, "f"), (old, old))
    flood = []
    for index in range(4):
        dump = bed.make_dump("dt-flood-%d" % index, {"f": os.urandom(100 * 1024)})
        _own(dump, NOBODY)
        flood.append(dump)
    os.makedirs(bed.queue, mode=0o700, exist_ok=True)
    for index, (dump, uid) in enumerate([(victim, USER_B)] + [(d, NOBODY) for d in flood]):
        entry = {"entry": {"dump_dir": dump, "s3_prefix": "s3://b/p"}, "uid": uid, "claimed_ns": 1, "attempts": 1}
        with open(os.path.join(bed.queue, "q-%d.json" % index), "w") as handle:
            json.dump(entry, handle)
    report = json.loads(bed.run_cli("gc", "--json", check=True).stdout)
    deleted = {item["path"] for item in report["deleted"]}
    assert deleted and deleted <= set(flood)
    assert os.path.exists(os.path.join(victim, "f"))


def _planned_waits(bed):
    return [int(w) for w in re.findall(r"next try in (\d+) s", bed.log_text())]


def test_outage_resumes_within_the_backoff_cap_without_hammering(s3bed, moto):
    bed = s3bed
    bed.write_config({"uploader": {"retry_max_interval_seconds": 2, "retry_window_seconds": 60}})
    dump = bed.make_dump("dt-outage", {"a": b"1", "b": b"2"})
    bed.enqueue(dump, "s3://%s/outage" % bed.bucket)
    moto.app.down = True
    try:
        proc = bed.popen_cli("upload", "--wait", "--json")
        # down until the uploader has backed off three times (1, 2, then 4 s were the cap ignored)
        deadline = time.monotonic() + 60
        while len(_planned_waits(bed)) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        during = len(moto.app.ops(bed.bucket, ok_only=False))
    finally:
        moto.app.down = False
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    # The backoff never planned a wait past the cap (2 s; the default is 30 s): the uploader's own
    # schedule as it logs it, which a busy host cannot stretch the way it stretches the wall clock.
    waits = _planned_waits(bed)
    assert len(waits) >= 3 and max(waits) <= 2, waits
    assert json.loads(out)["uploaded_files"] == 2
    assert during < 40  # a probe (two tries) per backoff step, not a request loop


def test_status_answers_from_the_summary_for_a_deep_spool(s3bed, moto):
    bed = s3bed
    dump = bed.make_dump("dt-deep", {"a": b"1"})
    for _index in range(260):
        bed.enqueue(dump, "s3://%s/deep" % bed.bucket)
    status = json.loads(bed.run_cli("status", "--json", check=True).stdout)
    assert status["exact"] is False and status["spool_depth"] == 260 and status["pending_dumps"] >= 1
    assert status["uploader"]["healthy"] is True


def test_allowed_groups_admit_members_only(s3bed, moto):
    bed = s3bed
    bed.write_config({"uploader": {"allowed_groups": ["nogroup"]}})  # nobody's primary group (Debian)
    for label, uid in (("member", NOBODY), ("stranger", USER_B)):
        dump = bed.make_dump("dt-" + label, {"a": label.encode()})
        _own(dump, uid)
        bed.enqueue(dump, "s3://%s/%s" % (bed.bucket, label), uid=uid)
    result = _upload(bed)
    assert result["dumps_done"] == 1 and result["entries_refused"] == 1
    assert [r["uid"] for r in result["refused"]] == [USER_B]
    assert sorted(_objects(moto, bed.bucket))[0].startswith("member/")


def test_our_manifest_deleted_meanwhile_is_written_again(s3bed, moto):
    bed = s3bed
    dump = bed.make_dump("dt-again", {"a": b"1"})
    bed.enqueue(dump, "s3://%s/again" % bed.bucket)
    _upload(bed)
    key = "again/%s-manifest.json" % INSTANCE_ID
    moto.client().delete_object(Bucket=bed.bucket, Key=key)
    with open(os.path.join(dump, "b"), "wb") as handle:
        handle.write(b"2")
    bed.enqueue(dump, "s3://%s/again" % bed.bucket)
    assert _upload(bed)["dumps_done"] == 1
    assert {f["name"] for f in _manifests(_objects(moto, bed.bucket))[key]["files"]} == {"a", "b"}


class _OldBotocoreClient:
    """s3.Client as on Debian 12 (botocore 1.29): its model has no IfNoneMatch / IfMatch."""

    def __new__(cls, moto):
        from neuron_core_dump import config, s3

        settings = config.validate({"s3": {"endpoint_url": moto.url, "addressing_style": "path"}})["s3"]
        client = s3.Client(settings, moto.client())
        modelled = client.supports
        client.supports = lambda op, param: param not in ("IfNoneMatch", "IfMatch") and modelled(op, param)
        return client


def test_conditions_are_sent_as_headers_where_botocore_does_not_model_them(s3bed, moto):
    """Debian 12's botocore lacks IfNoneMatch: the header still goes out and S3 still refuses."""
    import hashlib

    from neuron_core_dump import s3

    client = _OldBotocoreClient(moto)
    data = b"first"
    client.put_bytes(s3bed.bucket, "cond/a", data, hashlib.sha256(data).digest(), if_none_match=True)
    with pytest.raises(Exception) as info:
        client.put_bytes(s3bed.bucket, "cond/a", b"second", hashlib.sha256(b"second").digest(), if_none_match=True)
    assert s3.is_precondition_failed(info.value)
    puts = moto.app.ops(s3bed.bucket, "PutObject", key="cond/a", ok_only=False)
    assert [r["headers"].get("if-none-match") for r in puts] == ["*", "*"] and puts[-1]["status"] == 412
    etag = moto.client().head_object(Bucket=s3bed.bucket, Key="cond/a")["ETag"]
    client.put_bytes(s3bed.bucket, "cond/a", b"third", hashlib.sha256(b"third").digest(), if_match=etag)
    with pytest.raises(Exception) as info:
        client.put_bytes(s3bed.bucket, "cond/a", b"fourth", hashlib.sha256(b"fourth").digest(), if_match=etag)
    assert s3.is_precondition_failed(info.value)
    assert moto.client().get_object(Bucket=s3bed.bucket, Key="cond/a")["Body"].read() == b"third"
    upload_id = client.create_multipart(s3bed.bucket, "cond/a")
    part = client.upload_part(s3bed.bucket, "cond/a", upload_id, 1, b"x" * 10, hashlib.sha256(b"x" * 10).digest())
    with pytest.raises(Exception) as info:
        client.complete_multipart(s3bed.bucket, "cond/a", upload_id, [part], if_none_match=True)
    assert s3.is_precondition_failed(info.value)
