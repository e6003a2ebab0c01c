"""Adoption of dumps containers wrote into the container area: real files, real boto3, moto S3.

Every directory here is written the way a container's root writes it through the bind
mount (files owned by a mapped uid, 100000, or by root); the uploader is root. Steps run
in-process with a clock moved forward (``Area.step``), except the end-to-end test, which
runs the real CLI with real time. Needs root (chown) like the other host-program tests.
"""

import json
import os
import time

import pytest
from adoption_bed import NAME, Area
from ncd_bed import INSTANCE_ID, object_sha256

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the uploader is root; chown to mapped uids)")

RUNTIME_LOG = INSTANCE_ID + "-nrt-pid-7.log"
CORE = INSTANCE_ID + "-nd0-nc0-pid-7-tid-7-lid-0"


def manifest_of(client, bucket, prefix):
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    manifests = [k for k in keys if k.endswith("-manifest.json")]
    assert len(manifests) == 1, keys
    return keys, json.loads(client.get_object(Bucket=bucket, Key=manifests[0])["Body"].read())


def test_quiet_dir_is_adopted_and_uploaded_with_host_credentials_and_origin(s3bed, moto):
    """The CLI, real time: watched, claimed, copied, uploaded; the container's copy is gone."""
    area = Area(s3bed)
    files = {RUNTIME_LOG: b"tail of the runtime log\n", CORE: os.urandom(300000)}
    area.dump(files=files)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not area.adopted_dirs():
        s3bed.run_cli("upload", check=True)
        time.sleep(2)
    assert area.adopted_dirs(), s3bed.log_text()
    s3bed.run_cli("upload", check=True)
    assert os.listdir(area.shared) == []  # out of every container's reach
    client = moto.client()
    keys, manifest = manifest_of(client, s3bed.bucket, "host/%s/20260101-000000-0000000000000000/" % INSTANCE_ID)
    origin = manifest["origin"]
    assert origin["kind"] == "container" and origin["slot"] == "shared"
    assert origin["attribution"] == "unknown" and origin["attribution_id"].startswith("shared-")
    prefix = "host/%s/20260101-000000-0000000000000000/containers/%s/" % (INSTANCE_ID, origin["attribution_id"])
    for name, data in files.items():
        assert prefix + name in keys
        import hashlib

        assert object_sha256(client, s3bed.bucket, prefix + name) == hashlib.sha256(data).hexdigest()
    assert prefix + "ncd-container-origin.json" in keys
    # the upload used the uploader's (host's) credentials: the only ones this bed has
    assert all("testing/" in r["headers"].get("authorization", "") for r in moto.app.ops(s3bed.bucket, "PutObject"))
    status = json.loads(s3bed.run_cli("status", "--json", check=True).stdout)
    assert status["containers"]["adopted_total"] == 1


def test_adoption_off_adopts_nothing(s3bed):
    area = Area(s3bed, enabled=False)
    area.dump(files={RUNTIME_LOG: b"x"})
    area.adopt()
    assert area.adopted_dirs() == [] and os.listdir(area.shared) == [NAME]


def test_a_dir_still_written_waits_and_others_go_on(s3bed):
    area = Area(s3bed)
    busy = area.dump(NAME, {RUNTIME_LOG: b"a"})
    area.dump("dt-20260101-000001-cid-0000000000000000", {RUNTIME_LOG: b"b"})
    quiet = s3bed.settings["containers"]["quiet_seconds"]
    for k in range(4):
        with open(os.path.join(busy, "more-%d" % k), "wb") as handle:
            handle.write(b"still writing")
        area.step(k * (quiet + 1))
    assert [n.split("-container-")[0] for n in area.adopted_dirs()] == ["dt-20260101-000001-cid-0000000000000000"]
    assert os.listdir(area.shared) == [NAME]


def test_an_endless_writer_is_bounded_by_max_wait(s3bed):
    area = Area(s3bed, max_wait_seconds=60, max_dump_bytes=1000)
    busy = area.dump(files={RUNTIME_LOG: b"a" * 5000})
    with open(os.path.join(busy, RUNTIME_LOG), "ab") as writer:  # a writer's fd outlives the claim's rename
        for seconds in (0, 30, 61, 62):
            writer.write(b"b")
            writer.flush()
            area.step(seconds)
    (adopted,) = area.adopted_dirs()
    with open(os.path.join(s3bed.dumps, adopted, "ncd-container-origin.json")) as handle:
        record = json.load(handle)
    assert record["adoption"]["forced"]
    assert record["files"][0]["size"] == 1000 and record["files"][0]["truncated_to"] == 1000


def test_hostile_content_is_never_followed_opened_or_linked(s3bed):
    area = Area(s3bed)
    secret = os.path.join(s3bed.base, "host-secret")
    with open(secret, "wb") as handle:
        handle.write(b"host only")
    path = area.dump(files={RUNTIME_LOG: b"ok"})
    os.symlink(secret, os.path.join(path, "link-to-host"))
    os.mkfifo(os.path.join(path, "fifo"))
    host_file = os.path.join(area.path, "hard-source")  # a hard link needs the same file system
    with open(host_file, "wb") as handle:
        handle.write(b"another dump's bytes")
    os.link(host_file, os.path.join(path, "hard-link"))
    os.mkdir(os.path.join(path, "sub"))
    with open(os.path.join(path, b"bad-\xff-name\n".decode("utf-8", "surrogateescape")), "wb") as handle:
        handle.write(b"odd name")
    with open(os.path.join(path, "i-0-manifest.json"), "wb") as handle:
        handle.write(b"{}")
    started = time.monotonic()
    area.adopt()
    assert time.monotonic() - started < 10  # the FIFO never blocked
    (adopted,) = area.adopted_dirs()
    copy = os.path.join(s3bed.dumps, adopted)
    with open(os.path.join(copy, "ncd-container-origin.json")) as handle:
        record = json.load(handle)
    reasons = {item["name"]: item["reason"] for item in record["skipped"]}
    assert reasons["link-to-host"].startswith("symlink")
    assert reasons["fifo"].startswith("FIFO")
    assert "hard links" in reasons["hard-link"]
    assert reasons["sub"].startswith("subdirectory")
    assert reasons["i-0-manifest.json"].startswith("reserved")
    copied = sorted(os.listdir(copy))
    assert copied == sorted([RUNTIME_LOG, "ncd-container-origin.json", "bad-\udcff-name\n"])
    assert {item["name"] for item in record["files"]} == {RUNTIME_LOG, "bad-\\xff-name\\x0a"}
    assert os.stat(copy).st_uid == 0 and os.stat(copy).st_mode & 0o777 == 0o700


def test_forged_names_links_and_files_are_not_candidates(s3bed):
    area = Area(s3bed)
    host_dump = s3bed.make_dump(NAME, {"host-file": b"host dump"})
    os.symlink(host_dump, os.path.join(area.shared, NAME))  # a link named like a dump, to the host's dump
    with open(os.path.join(area.shared, "dt-20260101-000002-cid-0000000000000000"), "wb") as handle:
        handle.write(b"a file, not a dir")
    os.mkdir(os.path.join(area.shared, "dt-2026-cid-zz"))
    os.mkdir(os.path.join(area.shared, "neuron-core-dump"))
    summaries = area.adopt()
    assert area.adopted_dirs() == []
    assert summaries[-1].foreign_entries == 4 and summaries[-1].candidates == 0
    assert os.listdir(host_dump) == ["host-file"]


def test_a_flood_of_one_owner_does_not_delay_another(s3bed):
    area = Area(s3bed, max_adopt_per_run=2, max_candidates_per_owner=5)
    for k in range(30):
        area.dump("dt-20260101-0001%02d-cid-0000000000000000" % k, {RUNTIME_LOG: b"flood"}, uid=100000)
    area.dump("dt-20260101-000900-cid-0000000000000000", {RUNTIME_LOG: b"victim"}, uid=200000)
    summaries = area.adopt()
    assert summaries[0].not_watched == 25
    adopted = area.adopted_dirs()
    assert len(adopted) == 2
    assert any(n.startswith("dt-20260101-000900") for n in adopted)


def test_per_container_slot_keys_cannot_overwrite_another_dump(s3bed, moto):
    """A by-id slot has a fixed key (the container id): a key already taken is kept, ours goes aside."""
    container_id = "ab" * 32
    area = Area(s3bed)
    slot = os.path.join(area.path, "by-id", container_id)
    os.makedirs(slot, mode=0o700)
    os.chmod(os.path.join(area.path, "by-id"), 0o711)
    with open(os.path.join(area.path, "by-id", container_id + ".json"), "w") as handle:
        json.dump(
            {"id": container_id, "hostname": "trainer-0", "image": "localhost/nrt:1", "runtime": "podman"}, handle
        )
    os.chmod(os.path.join(area.path, "by-id", container_id + ".json"), 0o600)
    area.dump(files={RUNTIME_LOG: b"ours"}, slot=slot)
    key = "host/%s/20260101-000000-0000000000000000/containers/%s/%s" % (INSTANCE_ID, container_id, RUNTIME_LOG)
    client = moto.client()
    client.put_object(Bucket=s3bed.bucket, Key=key, Body=b"someone else's")
    area.adopt()
    s3bed.run_cli("upload", check=True)
    assert client.get_object(Bucket=s3bed.bucket, Key=key)["Body"].read() == b"someone else's"
    _keys, manifest = manifest_of(client, s3bed.bucket, key.rsplit("/", 1)[0] + "/")
    assert manifest["origin"]["attribution"] == "enforced"
    assert manifest["origin"]["hostname"] == "trainer-0" and manifest["origin"]["image"] == "localhost/nrt:1"
    (item,) = [f for f in manifest["files"] if f["name"] == RUNTIME_LOG]
    assert item["key"] != key and item["collision"]
    assert client.get_object(Bucket=s3bed.bucket, Key=item["key"])["Body"].read() == b"ours"
