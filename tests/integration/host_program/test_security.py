"""Planted symlinks, hard links and foreign owners: never followed by the hook, never uploaded by the uploader."""

import json
import os
import subprocess

import pytest
from ncd_bed import INSTANCE_ID, NOBODY

SECRET = b"root-only secret\n"


@pytest.fixture
def secret(bed):
    """A root-only file and dir standing in for /etc/shadow and /etc."""
    victim_dir = os.path.join(bed.base, "victim")
    os.mkdir(victim_dir, 0o700)
    path = os.path.join(victim_dir, "shadow")
    with open(path, "wb") as handle:
        handle.write(SECRET)
    os.chmod(path, 0o600)
    return path


def _plant_symlink(target, link, owner=NOBODY):
    os.symlink(target, link)
    os.lchown(link, owner, owner)


# --- hook ---------------------------------------------------------------------------------------


VENDOR_WRITING_INTO_ITS_DIR = (
    '#!/bin/sh\nwhile [ $# -gt 0 ]; do [ "$1" = --local-output-dir ] && d=$2; shift; done\n'
    'echo hardware-state > "$d/vendor-capture"\n'
)


def test_hook_does_not_follow_a_symlinked_dump_dir_and_redirects_the_vendor(bed, secret):
    """The trap is a link to a dir the attacker can read: neither we nor the vendor may write there."""
    victim_dir = os.path.dirname(secret)
    bed.write_vendor(VENDOR_WRITING_INTO_ITS_DIR)
    link = bed.dump_dir("dt-evil-cid-0")
    _plant_symlink(victim_dir, link)
    proc, _unused = bed.run_hook(bed.runtime_argv(link, prefix="s3://b/p"))
    assert proc.returncode == 0
    assert b"symlink" in proc.stderr
    assert os.listdir(victim_dir) == ["shadow"]
    (redirected,) = [n for n in os.listdir(bed.dumps) if "-redirected-" in n]
    assert redirected.startswith("dt-evil-cid-0-redirected-")
    files = os.listdir(os.path.join(bed.dumps, redirected))
    assert "vendor-capture" in files and any("-ncd-core-" in n for n in files)
    (entry,) = bed.incoming_entries()
    with open(os.path.join(bed.incoming, entry)) as handle:
        assert json.load(handle)["dump_dir"] == os.path.join(bed.dumps, redirected)


def test_hook_does_not_follow_a_root_owned_symlink_below_a_dump_root(bed, secret):
    victim_dir = os.path.dirname(secret)
    link = bed.dump_dir("dt-link-cid-0")
    _plant_symlink(victim_dir, link, owner=0)
    proc, _unused = bed.run_hook(bed.runtime_argv(os.path.join(link, "sub")))
    assert proc.returncode == 0
    assert os.listdir(victim_dir) == ["shadow"]


def test_hook_does_not_follow_a_symlinked_intermediate_component(bed, secret):
    victim_dir = os.path.dirname(secret)
    middle = bed.dump_dir("jobs")
    os.mkdir(middle, 0o777)
    _plant_symlink(victim_dir, os.path.join(middle, "dt-x"))
    proc, _unused = bed.run_hook(bed.runtime_argv(os.path.join(middle, "dt-x", "rank0")))
    assert proc.returncode == 0
    assert os.listdir(victim_dir) == ["shadow"]


def test_hook_outside_roots_follows_only_root_owned_symlinks(bed, tmp_path):
    bed.write_config({"hook": {"write_outside_roots": True}})  # opt-in since issue 7 (default false)
    real = tmp_path / "real"
    real.mkdir()
    trusted = tmp_path / "trusted"
    _plant_symlink(str(real), str(trusted), owner=0)
    proc, _unused = bed.run_hook(bed.runtime_argv(str(trusted / "dump")))
    assert proc.returncode == 0, proc.stderr
    assert len(os.listdir(real / "dump")) == 1  # like /var/run -> /run: made by root, followed

    planted = tmp_path / "planted"
    _plant_symlink(str(real), str(planted), owner=NOBODY)
    proc, _unused = bed.run_hook(bed.runtime_argv(str(planted / "dump2")))
    assert proc.returncode == 0
    assert b"symlink not owned by root" in proc.stderr
    assert not (real / "dump2").exists()


def test_runtime_generated_symlink_is_not_copied(bed, secret, tmp_path):
    link = tmp_path / "nrt.log"
    _plant_symlink(secret, str(link))
    dump = bed.dump_dir()
    proc, _unused = bed.run_hook(bed.runtime_argv(dump, runtime_file=str(link)))
    assert proc.returncode == 0
    for name in os.listdir(dump):
        with open(os.path.join(dump, name), "rb") as handle:
            assert SECRET not in handle.read()


def test_foreign_dump_dir_is_refused(bed):
    """Another user's pre-made dump dir: the workload does not write into it."""
    dump = bed.dump_dir("dt-foreign-cid-0")
    os.mkdir(dump, 0o777)
    os.chown(dump, NOBODY, NOBODY)
    proc, _unused = bed.run_hook(bed.runtime_argv(dump), user=1000)
    assert proc.returncode == 0
    assert b"owned by another user" in proc.stderr
    assert os.listdir(dump) == []


def test_users_cannot_list_or_read_the_spool(bed):
    bed.run_hook(bed.runtime_argv(bed.dump_dir()))
    (entry,) = bed.incoming_entries()
    for command in (["/bin/ls", bed.incoming], ["/bin/cat", os.path.join(bed.incoming, entry)]):
        probe = subprocess.run(
            command, preexec_fn=lambda: os.setuid(NOBODY), capture_output=True, timeout=10, check=False
        )
        assert probe.returncode != 0, command


# --- uploader -----------------------------------------------------------------------------------


@pytest.fixture
def secured(s3bed):
    victim_dir = os.path.join(s3bed.base, "victim")
    os.mkdir(victim_dir, 0o700)
    path = os.path.join(victim_dir, "shadow")
    with open(path, "wb") as handle:
        handle.write(SECRET)
    os.chmod(path, 0o600)
    s3bed.secret = path
    return s3bed


def _all_object_bodies(moto, bucket):
    client = moto.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def test_uploader_skips_symlinks_hardlinks_and_foreign_files(secured, moto):
    bed = secured
    dump = bed.dump_dir("dt-user-cid-0")
    proc, _unused = bed.run_hook(bed.runtime_argv(dump, prefix="s3://%s/u" % bed.bucket), user=NOBODY)
    assert proc.returncode == 0, proc.stderr
    # what a hostile workload user can plant in its own dump dir
    _plant_symlink(bed.secret, os.path.join(dump, "shadow-link"))
    os.link(bed.secret, os.path.join(dump, "shadow-hardlink"))  # (root makes it: protected_hardlinks is off here)
    with open(os.path.join(dump, "root-file"), "wb") as handle:
        handle.write(SECRET)  # a root-owned file moved in by the user
    os.mkfifo(os.path.join(dump, "fifo"))
    os.chown(os.path.join(dump, "fifo"), NOBODY, NOBODY)
    result = json.loads(bed.run_cli("upload", "--json", check=True).stdout)
    bodies = _all_object_bodies(moto, bed.bucket)
    assert all(SECRET not in body for body in bodies.values())
    names = {key.split("/", 1)[1] for key in bodies}
    assert names == {n for n in os.listdir(dump) if "-ncd-" in n} | {INSTANCE_ID + "-manifest.json"}
    assert result["uploaded_files"] == 1
    log = bed.log_text()
    assert "shadow-link is a symlink" in log
    assert "shadow-hardlink not uploaded: has 2 hard links" in log
    assert "root-file not uploaded: owned by uid 0" in log


def test_uploader_refuses_a_dump_dir_swapped_for_a_symlink(secured, moto):
    bed = secured
    dump = bed.dump_dir("dt-swap-cid-0")
    proc, _unused = bed.run_hook(bed.runtime_argv(dump, prefix="s3://%s/s" % bed.bucket), user=NOBODY)
    assert proc.returncode == 0
    # after the hook returned, the user swaps the dir for a link to a root-only dir
    os.rename(dump, dump + ".old")
    _plant_symlink(os.path.dirname(bed.secret), dump)
    result = json.loads(bed.run_cli("upload", "--json", check=True).stdout)
    assert result["entries_refused"] == 1
    assert _all_object_bodies(moto, bed.bucket) == {}
    assert "refused" in bed.log_text()


def test_uploader_refuses_entries_outside_the_roots(secured, moto):
    bed = secured
    bed.enqueue(os.path.dirname(bed.secret), "s3://%s/x" % bed.bucket, uid=NOBODY)
    bed.enqueue("/etc", "s3://%s/y" % bed.bucket, uid=NOBODY)
    result = json.loads(bed.run_cli("upload", "--json", check=True).stdout)
    assert result["entries_refused"] == 2
    assert _all_object_bodies(moto, bed.bucket) == {}


def test_entry_owner_comes_from_the_file_not_its_content(secured, moto):
    """A user cannot have root's dump uploaded by writing an entry that names it."""
    bed = secured
    dump = bed.make_dump("dt-root-cid-0", {"root-data": SECRET})  # root's dump, root-owned
    entry = os.path.join(bed.incoming, "forged.json")
    with open(entry, "w") as handle:
        json.dump({"dump_dir": dump, "s3_prefix": "s3://%s/forged" % bed.bucket, "uid": 0}, handle)
    os.chown(entry, NOBODY, NOBODY)
    result = json.loads(bed.run_cli("upload", "--json", check=True).stdout)
    assert result["entries_refused"] == 1
    assert _all_object_bodies(moto, bed.bucket) == {}
    assert "owned by uid 0, entry written by uid %d" % NOBODY in bed.log_text()


def test_spool_entries_that_are_links_are_rejected(secured, moto):
    bed = secured
    dump = bed.make_dump("dt-ok-cid-0", {"a": b"1"})
    real_entry = os.path.join(bed.base, "entry.json")
    with open(real_entry, "w") as handle:
        json.dump({"dump_dir": dump, "s3_prefix": "s3://%s/l" % bed.bucket}, handle)
    os.symlink(real_entry, os.path.join(bed.incoming, "link.json"))
    os.link(real_entry, os.path.join(bed.incoming, "hard.json"))
    result = json.loads(bed.run_cli("upload", "--json", check=True).stdout)
    assert result["dumps_done"] == 0
    assert _all_object_bodies(moto, bed.bucket) == {}
    assert "rejected spool entry" in bed.log_text()
    assert bed.incoming_entries() == [] and bed.queue_entries() == []


def test_tls_verification_cannot_be_disabled_without_an_explicit_endpoint(bed):
    bed.write_config({"s3": {"verify_tls": False}})
    proc = bed.run_cli("list")
    assert proc.returncode == 2
    assert "s3.verify_tls" in proc.stderr and "endpoint_url" in proc.stderr
