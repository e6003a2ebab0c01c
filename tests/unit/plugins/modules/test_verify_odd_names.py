"""A dump holding a file whose name is not UTF-8 must not drop the host from the fleet report.

Real processes end to end: ``ansible-playbook playbooks/verify.yml`` runs the real
AnsiballZ core_dump_info on "localhost", which runs the real host program (the role's
files, installed as ncd_bed.py does) against a real moto server. Only the module's fixed
paths are moved into a temporary host tree (fakehost_site/sitecustomize.py), because the
test must not touch this machine's /etc or /opt.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
HOST_PROGRAM_TESTS = os.path.join(REPO, "tests", "integration", "host_program")
sys.path.insert(0, HOST_PROGRAM_TESTS)
pytest.importorskip("moto")
ncd_bed = pytest.importorskip("ncd_bed")

ODD_NAMES = [b"bad-\xff\xfe.bin", b"ctl-\x1b[31m\r.bin", b"long-" + b"\xff" * 200 + b".bin"]
ESCAPED = ["bad-\\xff\\xfe.bin", "ctl-\\x1b[31m\\x0d.bin", "long-" + "\\xff" * 200 + ".bin"]
# a dump dir whose own name is not UTF-8: core_dump_info lists it, so the fleet report carries it
ODD_DIR, ODD_DIR_ESCAPED = b"dt-odd-\xff\xfe", "dt-odd-\\xff\\xfe"


@pytest.fixture
def fleet():
    """A fake host root holding an installed host program, its moto, and a dump with odd names."""
    root = tempfile.mkdtemp(prefix="ncd-verify-")
    os.chmod(root, 0o755)
    moto = ncd_bed.MotoServer()
    moto.start()
    saved = dict(os.environ)
    os.environ.update(ncd_bed.S3_ENV)
    try:
        lib = os.path.join(root, "lib")
        ncd_bed.scratch_install.install(lib)
        bed = ncd_bed.Bed(os.path.join(root, "bed"), lib, moto)
        os.makedirs(os.path.join(root, "host", "etc"))
        with open(os.path.join(root, "host", "etc", "environment"), "wb") as handle:
            handle.write(b"NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=/var/lib/x/\xff-%d\n")
        bucket = moto.new_bucket()
        dump = bed.make_dump("dt-20260101-000000-cid-0000000000000000", {"core": b"x"})
        for name in ODD_NAMES:
            with open(os.path.join(dump.encode(), name), "wb") as handle:
                handle.write(b"y")
        bed.enqueue(dump, "s3://%s/neuron/dt-%%d" % bucket)
        odd_dir = os.path.join(bed.dumps.encode(), ODD_DIR)
        os.mkdir(odd_dir, 0o700)
        with open(os.path.join(odd_dir, b"core"), "wb") as handle:
            handle.write(b"z")
        result = json.loads(bed.run_cli("upload", "--json", check=True).stdout)
        # the odd names do not hold the dump back: it is complete, its manifest keeps their bytes
        assert result["dumps_done"] == 1 and result["errors"] == [] and bed.queue_entries() == []
        (manifest,) = [
            json.loads(body) for key, body in _objects(moto, bucket).items() if key.endswith("-manifest.json")
        ]
        kept = {base64.b64decode(f["name_b64"]) for f in manifest["files"] if "name_b64" in f}
        assert kept == set(ODD_NAMES)
        yield root, bed
    finally:
        os.environ.clear()
        os.environ.update(saved)
        moto.stop()
        shutil.rmtree(root, ignore_errors=True)


def _objects(moto, bucket):
    client = moto.client()
    listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}


def _interpreter(root, bed):
    """The module's python, with its fixed paths moved into the fake host tree."""
    wrapper = os.path.join(root, "python")
    moved = json.dumps({"HOST_PROGRAM": bed.cli, "HOOK": bed.hook})
    env = dict(ncd_bed.S3_ENV, PYTHONPATH=os.path.join(HERE, "fakehost_site"))
    env.update(NCD_FAKEHOST_ROOT=os.path.join(root, "host"), NCD_FAKEHOST_PATHS=moved)
    with open(wrapper, "w") as handle:
        handle.write("#!/bin/sh\n")
        handle.writelines("export %s='%s'\n" % item for item in sorted(env.items()))
        handle.write('exec %s "$@"\n' % sys.executable)
    os.chmod(wrapper, 0o755)
    return wrapper


def test_verify_reports_a_host_whose_dump_holds_odd_names(fleet):
    root, bed = fleet
    status = bed.run_cli("status", "--json").stdout
    inventory = os.path.join(root, "inventory.ini")
    with open(inventory, "w") as handle:
        handle.write(
            "node1 ansible_connection=local ansible_become=false ansible_python_interpreter=%s\n"
            % _interpreter(root, bed)
        )
    report_dir = os.path.join(root, "report")
    os.makedirs(report_dir)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".bed", "collections"))
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0")
    # expect=disabled: the drift findings then quote the enabled contexts' values.
    extra = {"neuron_core_dump_report_dir": report_dir, "neuron_core_dump_hosts": "node1"}
    extra["neuron_core_dump_expect"] = "disabled"
    playbook = os.path.join(REPO, "playbooks", "verify.yml")
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory, playbook, "-e", json.dumps(extra)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Refusing to deserialize" not in proc.stdout + proc.stderr
    with open(os.path.join(report_dir, "fleet-report.json")) as handle:
        report = json.load(handle)
    # The host reported: it has a state, not "no result".
    assert report["host_count"] == 1 and report["hosts"]["node1"]["state"] == "enabled"
    assert report["hosts"]["node1"]["hook"] == "ours"  # the bed's hook: the paths really moved
    text = json.dumps(report)
    # The /etc/environment value with a byte that is not UTF-8 is reported escaped: this alone made
    # the module fail before (whatever the host program reports).
    assert "/var/lib/x/\\\\xff-%d" in text
    # The dump dir with the odd name is listed by core_dump_info and reaches the report escaped.
    assert json.dumps(ODD_DIR_ESCAPED)[1:-1] in text, ODD_DIR_ESCAPED
    # Each odd file name the host program reports reaches the fleet report escaped (after a complete
    # upload, status names no file: then there is nothing to check here).
    for raw, escaped in zip(ODD_NAMES, ESCAPED):
        if json.dumps(raw.decode("utf-8", "surrogateescape"))[1:-1] in status:
            assert json.dumps(escaped)[1:-1] in text, escaped
    with open(os.path.join(report_dir, "fleet-report.md"), encoding="utf-8") as handle:
        assert "| node1 |" in handle.read()
