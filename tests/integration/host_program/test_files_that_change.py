"""Issue 7, integrity: files of a hostile user's dump that vanish, cannot be read or change under the uploader.

The dump is made by the real hook running as ``nobody``; the root uploader is a real
``neuron-core-dump upload`` process against the session's moto server. The races are
made deterministic with a gate in front of moto: the uploader's request for one file is
held until the test has changed the dump dir, so every file sent after it is opened
after the change (``s3.max_concurrency: 1`` sends files one at a time, in name order).

What the tests prove, for each kind of problem file: the upload finishes (a deadline on
the whole process: a FIFO cannot hang it), the manifest is written, the other files are
in S3 byte-identical, the problem file is listed under ``skipped`` with its reason (or
uploaded consistently: the manifest's size and sha256 are those of the object in S3),
nothing outside the dump is uploaded, and ``status --json`` stays healthy.
"""

import contextlib
import hashlib
import json
import os
import socket
import stat
import subprocess
import threading
import time
from urllib.parse import parse_qs

import pytest
from ncd_bed import INSTANCE_ID, NOBODY, S3_ENV, _operation

USER_B = 61002  # another unprivileged uid (no passwd entry needed)
SECRET = b"root-only secret\n"
MIB = 1024 * 1024
DEADLINE = 180  # for a whole upload process on a loaded machine; a hang fails, a slow run does not


# --- helpers -------------------------------------------------------------------------------------------


class _Gate:
    """WSGI wrapper around moto: the first request of ``op`` on each watched key waits until released."""

    def __init__(self, inner, watched):
        self.inner = inner
        self.watched = {(op, key): (threading.Event(), threading.Event()) for op, key in watched}

    def __call__(self, environ, start_response):
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        path = environ.get("PATH_INFO", "")
        events = self.watched.get((_operation(environ["REQUEST_METHOD"], path, query), path.split("/", 2)[-1]))
        if events and not events[0].is_set():
            events[0].set()
            events[1].wait(DEADLINE)
        return self.inner(environ, start_response)

    def reached(self, op, key):
        assert self.watched[(op, key)][0].wait(DEADLINE), "the uploader never sent %s %s" % (op, key)

    def release(self, op, key):
        self.watched[(op, key)][1].set()

    def release_all(self):
        for _arrived, release in self.watched.values():
            release.set()


@contextlib.contextmanager
def gate(moto, *watched):
    inner = moto.app.app
    moto.app.app = _Gate(inner, watched)
    try:
        yield moto.app.app
    finally:
        moto.app.app.release_all()
        moto.app.app = inner


def _start_upload(bed, *wrapper):
    env = dict(os.environ, **S3_ENV)
    env.pop("INVOCATION_ID", None)
    argv = [*wrapper, bed.cli, "upload", "--json"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc, failed=False):
    """The upload's JSON result; the deadline is on the whole process (a blocked open would hang it).
    Exit 1 when a dump failed (kept queued for the next pass)."""
    out, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == (1 if failed else 0), "%s\n%s" % (out, err)
    return json.loads(out)


def _objects(moto, bucket):
    client = moto.client()
    listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}


def _manifest(objects, prefix):
    return json.loads(objects["%s/%s-manifest.json" % (prefix, INSTANCE_ID)])


def _check_consistent(objects, manifest):
    """Every file the manifest lists is in S3 with exactly the size and sha256 the manifest records."""
    for item in manifest["files"]:
        body = objects[item["key"]]
        assert (len(body), hashlib.sha256(body).hexdigest()) == (item["size"], item["sha256"]), item["name"]
    assert not [k for k in objects if "%~c" in k], "our own earlier object was taken for another dump's"


def _healthy(bed):
    status = json.loads(bed.run_cli("status", "--json", check=True).stdout)
    assert status["uploader"]["healthy"] is True, status["uploader"]
    return status


def _user_dump(bed, name, files):
    """A dump made by the hook as ``nobody``, plus ``files`` written as that user would (0600, theirs)."""
    dump = bed.dump_dir(name)
    proc, _unused = bed.run_hook(bed.runtime_argv(dump, prefix="s3://%s/%s" % (bed.bucket, name)), user=NOBODY)
    assert proc.returncode == 0, proc.stderr
    for file_name, data in files.items():
        _write_as(os.path.join(dump, file_name), data, NOBODY)
    return dump


def _write_as(path, data, uid, mode=0o600):
    with open(path, "wb") as handle:
        handle.write(data)
    os.chown(path, uid, uid)
    os.chmod(path, mode)


def _swap(path, make, owner=NOBODY):
    """Replace ``path`` atomically (rename over it) by what ``make(tmp)`` creates, as the user would."""
    tmp = os.path.join(os.path.dirname(path), ".swap-" + os.path.basename(path))
    make(tmp)
    if owner is not None:
        os.lchown(tmp, owner, owner)
    os.rename(tmp, path)


def _socket_at(path):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    sock.close()


@pytest.fixture
def foreign_files(s3bed):
    """A root-only file (stands in for /etc/shadow) and a file of another user, on the dump's file system."""
    victim = os.path.join(s3bed.base, "victim")
    os.mkdir(victim, 0o700)
    _write_as(os.path.join(victim, "shadow"), SECRET, 0)
    other = os.path.join(s3bed.base, "other-user")
    os.mkdir(other, 0o755)
    _write_as(os.path.join(other, "data"), b"another user's data\n", USER_B)
    return os.path.join(victim, "shadow"), os.path.join(other, "data")


def _no_foreign_bytes(objects):
    for key, body in objects.items():
        assert SECRET not in body and b"another user's data" not in body, key
        if not key.endswith("-manifest.json"):
            with open("/etc/shadow", "rb") as handle:
                assert body != handle.read(), key


# --- present when the uploader lists the dump ------------------------------------------------------------


def test_every_kind_of_file_root_will_not_read_is_listed_as_skipped(s3bed, moto, foreign_files):
    bed = s3bed
    shadow, other = foreign_files
    dump = _user_dump(bed, "dt-kinds", {"keep": os.urandom(3000), "mode-000": b"the user's own bytes"})
    os.chmod(os.path.join(dump, "mode-000"), 0)  # not unreadable for root: its owner's file, uploaded
    os.mkfifo(os.path.join(dump, "fifo"))
    _socket_at(os.path.join(dump, "socket"))
    os.mknod(os.path.join(dump, "device"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # like /dev/null
    os.mkdir(os.path.join(dump, "%s-nd0-nc0-pid-1" % INSTANCE_ID))  # a directory named like a dump file
    os.symlink("/etc/shadow", os.path.join(dump, "etc-shadow"))
    os.symlink(shadow, os.path.join(dump, "shadow-link"))
    os.link(other, os.path.join(dump, "hardlink"))  # (made by root here: protected_hardlinks may be on)
    _write_as(os.path.join(dump, "root-file"), SECRET, 0)  # a root-owned file moved in
    _write_as(os.path.join(dump, "x-manifest.json"), b'{"forged": true}', NOBODY)
    for name in os.listdir(dump):
        if name not in ("hardlink", "root-file"):
            os.lchown(os.path.join(dump, name), NOBODY, NOBODY)
    result = _finish(_start_upload(bed))
    assert result["dumps_done"] == 1 and result["errors"] == []
    objects = _objects(moto, bed.bucket)
    manifest = _manifest(objects, "dt-kinds")
    _check_consistent(objects, manifest)
    _no_foreign_bytes(objects)
    records = {n for n in os.listdir(dump) if "-ncd-" in n}  # the hook's own record of the call
    assert {f["name"] for f in manifest["files"]} == {"keep", "mode-000"} | records
    for item in manifest["files"]:
        with open(os.path.join(dump, item["name"]), "rb") as handle:
            assert objects[item["key"]] == handle.read()
    assert {s["name"]: s["reason"] for s in manifest["skipped"]} == {
        "fifo": "not a regular file",
        "socket": "not a regular file",
        "device": "not a regular file",
        "%s-nd0-nc0-pid-1" % INSTANCE_ID: "not a regular file",
        "etc-shadow": "symlink: not followed",
        "shadow-link": "symlink: not followed",
        "hardlink": "has 2 hard links",
        "root-file": "owned by uid 0, not the dump's uid %d" % NOBODY,
        "x-manifest.json": "reserved name: only the uploader writes manifests",
    }
    assert _healthy(bed)["pending_dumps"] == 0


def test_files_root_cannot_open_are_skipped_as_unreadable(s3bed, moto):
    """Root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH (a hardened unit, root-squashed storage): a
    mode-000 file is really unreadable. It is listed as unreadable; the rest of the dump goes."""
    bed = s3bed
    dump = bed.make_dump("dt-unreadable", {})
    os.chmod(dump, 0o755)  # the user lets everyone list it; one file they lock
    for name, mode in (("readable", 0o644), ("locked", 0o000)):
        _write_as(os.path.join(dump, name), name.encode() * 100, NOBODY, mode)
    os.chown(dump, NOBODY, NOBODY)
    bed.enqueue(dump, "s3://%s/dt-unreadable" % bed.bucket, uid=NOBODY)
    drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
    result = _finish(_start_upload(bed, *drop))
    assert result["dumps_done"] == 1 and result["errors"] == []
    objects = _objects(moto, bed.bucket)
    manifest = _manifest(objects, "dt-unreadable")
    _check_consistent(objects, manifest)
    assert [f["name"] for f in manifest["files"]] == ["readable"]
    assert objects["dt-unreadable/readable"] == b"readable" * 100
    assert {s["name"]: s["reason"] for s in manifest["skipped"]} == {"locked": "unreadable: Permission denied"}
    _healthy(bed)


# --- changed between the listing and the open ------------------------------------------------------------


def test_files_that_vanish_or_are_swapped_after_the_listing_are_skipped(s3bed, moto, foreign_files):
    bed = s3bed
    shadow, other = foreign_files
    bed.write_config({"s3": {"max_concurrency": 1}})
    names = ["vanish", "to-symlink", "to-fifo", "to-socket", "to-dir", "to-hardlink", "to-root-file"]
    files = {"0-gate": os.urandom(2000), "keep": os.urandom(5000), "deleted-before": b"x"}
    files.update({name: b"regular bytes of " + name.encode() for name in names})
    dump = _user_dump(bed, "dt-swap", files)
    os.unlink(os.path.join(dump, "deleted-before"))  # after the hook enqueued, before the uploader ran
    held = ("PutObject", "dt-swap/0-gate")
    with gate(moto, held) as gated:
        proc = _start_upload(bed)
        gated.reached(*held)  # listed, first file being sent: the others are opened after what follows
        path = {name: os.path.join(dump, name) for name in names}
        os.unlink(path["vanish"])
        _swap(path["to-symlink"], lambda tmp: os.symlink(shadow, tmp))
        _swap(path["to-fifo"], os.mkfifo)
        _swap(path["to-socket"], _socket_at)
        os.unlink(path["to-dir"])
        os.mkdir(path["to-dir"])
        _swap(path["to-hardlink"], lambda tmp: os.link(other, tmp), owner=None)
        _swap(path["to-root-file"], lambda tmp: _write_as(tmp, SECRET, 0), owner=None)
        gated.release(*held)
        result = _finish(proc)
    assert result["dumps_done"] == 1 and result["errors"] == [], result
    objects = _objects(moto, bed.bucket)
    manifest = _manifest(objects, "dt-swap")
    _check_consistent(objects, manifest)
    _no_foreign_bytes(objects)
    assert objects["dt-swap/0-gate"] == files["0-gate"] and objects["dt-swap/keep"] == files["keep"]
    records = {n for n in os.listdir(dump) if "-ncd-" in n}  # the hook's own record of the call
    assert {f["name"] for f in manifest["files"]} == {"0-gate", "keep"} | records
    assert {s["name"]: s["reason"] for s in manifest["skipped"]} == {
        "vanish": "vanished before upload",
        "to-symlink": "symlink: not followed",
        "to-fifo": "not a regular file",
        "to-socket": "not a regular file",
        "to-dir": "not a regular file",
        "to-hardlink": "has 2 hard links",
        "to-root-file": "owned by uid 0, not the dump's uid %d" % NOBODY,
    }
    assert _healthy(bed)["pending_dumps"] == 0


def test_a_file_swapped_with_a_symlink_in_a_loop_never_uploads_the_target(s3bed, moto, foreign_files):
    """A user swaps a file and a link to a root-only file as fast as it can while the uploader runs.
    No pass fails or uploads the target: the file is sent (its own bytes), skipped (a symlink, or
    gone when opened) or, changing all the time, left for a later pass; once it rests it is sent."""
    bed = s3bed
    shadow, _other = foreign_files
    regular = b"the user's regular bytes\n"
    dump = _user_dump(bed, "dt-loop", {"swapped": regular, "keep": b"keep"})
    path = os.path.join(dump, "swapped")
    stop = threading.Event()
    swaps = [0]

    def swapper():
        while not stop.is_set():
            _swap(path, lambda tmp: os.symlink(shadow, tmp))
            stop.wait(0.002)  # each state lasts about as long as the other
            _swap(path, lambda tmp: _write_as(tmp, regular, NOBODY))
            stop.wait(0.002)
            swaps[0] += 1

    allowed = ({}, {"swapped": "symlink: not followed"}, {"swapped": "vanished before upload"})
    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    try:
        for _round in range(5):
            bed.enqueue(dump, "s3://%s/dt-loop" % bed.bucket, uid=NOBODY)
            result = _finish(_start_upload(bed))
            assert result["errors"] == [] and result["dumps_done"] + result["dumps_deferred"] == 1, result
            objects = _objects(moto, bed.bucket)
            _no_foreign_bytes(objects)
            assert objects.get("dt-loop/swapped", regular) == regular
            if "dt-loop/%s-manifest.json" % INSTANCE_ID in objects:
                manifest = _manifest(objects, "dt-loop")
                _check_consistent(objects, manifest)
                assert {s["name"]: s["reason"] for s in manifest["skipped"]} in allowed
    finally:
        stop.set()
        thread.join(30)
    assert swaps[0] > 5 and os.path.isfile(path) and not os.path.islink(path)  # the swapper ends on the file
    bed.enqueue(dump, "s3://%s/dt-loop" % bed.bucket, uid=NOBODY)
    assert _finish(_start_upload(bed))["dumps_done"] == 1
    objects = _objects(moto, bed.bucket)
    manifest = _manifest(objects, "dt-loop")
    _check_consistent(objects, manifest)
    assert manifest["skipped"] == [] and objects["dt-loop/swapped"] == regular and objects["dt-loop/keep"] == b"keep"
    assert _healthy(bed)["pending_dumps"] == 0


# --- changed while it is uploaded ------------------------------------------------------------------------


def _append_until(path, stop):
    with open(path, "ab") as handle:
        while not stop.is_set():
            handle.write(os.urandom(4096))
            handle.flush()
            time.sleep(0.01)


def test_files_that_grow_or_shrink_during_the_upload_never_get_a_wrong_sha256(s3bed, moto):
    """Multipart (a concurrent writer appends; a truncation under the parts): that file fails this pass
    and no manifest is written, so nothing claims other bytes. Single PUT truncated while its request
    is in flight: the bytes read were checked before sending, so the object is a consistent earlier
    version. Once the file rests the next pass sends what is there, to the same keys (our own earlier
    object is not taken for another dump's), the manifest matches every object, no multipart upload
    is left behind and the uploader stays healthy throughout."""
    bed = s3bed
    bed.write_config({"s3": {"multipart_threshold_bytes": 5 * MIB, "multipart_chunk_bytes": 5 * MIB}})
    files = {"big": os.urandom(11 * MIB), "shrinks": os.urandom(6 * MIB), "small": os.urandom(256 * 1024)}
    files["keep"] = os.urandom(1000)
    dump = _user_dump(bed, "dt-grow", files)
    big, shrinks = ("CreateMultipartUpload", "dt-grow/big"), ("CreateMultipartUpload", "dt-grow/shrinks")
    small = ("PutObject", "dt-grow/small")
    stop = threading.Event()
    writer = threading.Thread(target=_append_until, args=(os.path.join(dump, "big"), stop), daemon=True)
    with gate(moto, big, shrinks, small) as gated:
        proc = _start_upload(bed)
        gated.reached(*big)  # hashed, about to send its parts: a concurrent writer starts appending
        writer.start()
        gated.release(*big)
        gated.reached(*shrinks)
        os.truncate(os.path.join(dump, "shrinks"), MIB)
        gated.release(*shrinks)
        gated.reached(*small)  # its bytes are in the request: the user truncates it
        os.truncate(os.path.join(dump, "small"), 1000)
        gated.release(*small)
        first = _finish(proc, failed=True)
    stop.set()
    writer.join(30)
    assert first["dumps_failed"] == 1 and first["dumps_done"] == 0
    (error,) = first["errors"]
    assert "big: file changed while it was uploaded" in error and "shrinks: file shrank while reading" in error
    assert "small:" not in error
    objects = _objects(moto, bed.bucket)
    assert "dt-grow/%s-manifest.json" % INSTANCE_ID not in objects  # not complete: nothing claims it is
    assert "dt-grow/big" not in objects and "dt-grow/shrinks" not in objects
    assert objects["dt-grow/small"] == files["small"]
    assert len(moto.client().list_multipart_uploads(Bucket=bed.bucket).get("Uploads", [])) == 2
    status = _healthy(bed)  # a user's changing file is that dump's problem, not a broken uploader
    assert status["pending_dumps"] == 1
    second = _finish(_start_upload(bed))
    assert second["dumps_done"] == 1 and second["errors"] == []
    objects = _objects(moto, bed.bucket)
    manifest = _manifest(objects, "dt-grow")
    _check_consistent(objects, manifest)
    for name in files:
        with open(os.path.join(dump, name), "rb") as handle:
            assert objects["dt-grow/" + name] == handle.read(), name
    assert os.path.getsize(os.path.join(dump, "big")) > 11 * MIB and len(objects["dt-grow/small"]) == 1000
    assert manifest["skipped"] == []
    assert moto.client().list_multipart_uploads(Bucket=bed.bucket).get("Uploads", []) == []
    _healthy(bed)
