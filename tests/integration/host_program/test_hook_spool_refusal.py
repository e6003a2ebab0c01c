"""The hook never writes into the uploader's spool or state directories, whatever it is given.

Real hook processes, run as an unprivileged workload user (``nobody``) and as root, with
``--local-output-dir`` aimed at ``incoming/``, ``queue/`` and the state dir directly,
through ``..``, through a relative path from a cwd inside the spool, and through a
root-owned link (the only kind the hook follows outside the dump roots).
"""

import json
import os
import subprocess

import pytest
from ncd_bed import NOBODY, REPO_ROOT

FIXTURE_VENDOR = os.path.join(REPO_ROOT, "tests", "bed", "fixtures", "aws-neuronx-tools", "bin", "neuron-dump")


def _snapshot(*tops):
    """Every path below ``tops`` with its type, owner and size: what a write would change."""
    found = {}
    for top in tops:
        for base, dirs, files in os.walk(top):
            for name in dirs + files:
                path = os.path.join(base, name)
                info = os.lstat(path)
                found[path] = (info.st_mode, info.st_uid, info.st_size)
    return found


def _run(bed, argv, user, cwd="/"):
    def preexec():
        if user is not None:
            os.setgid(user)
            os.setgroups([])
            os.setuid(user)

    return subprocess.run(
        [bed.hook, *argv],
        env={"PATH": "/usr/bin:/bin"},
        cwd=cwd,
        capture_output=True,
        timeout=30,
        preexec_fn=preexec,
        check=False,
    )


def _targets(bed):
    return {
        "incoming": os.path.join(bed.incoming, "dt-x-cid-y"),
        "incoming itself": bed.incoming,
        "queue": os.path.join(bed.queue, "dt-x-cid-y"),
        "spool": os.path.join(bed.spool, "dt-x-cid-y"),
        "state": os.path.join(bed.state, "dt-x-cid-y"),
        "state itself": bed.state,
        "dot-dot": os.path.join(bed.dumps, "..", "spool", "incoming", "dt-x-cid-y"),
        "dot-dot below a root": bed.dumps + "/dt-a/../../spool/incoming/dt-x",
    }


TARGETS = ["incoming", "incoming itself", "queue", "spool", "state", "state itself", "dot-dot", "dot-dot below a root"]


def _check_nothing_written(bed, before, proc):
    assert proc.returncode == 0
    after = _snapshot(bed.spool, bed.state)
    new = {path: meta for path, meta in after.items() if path not in before}
    # the only thing the hook may add to the spool is its own entry file in incoming/
    entries = [p for p in new if os.path.dirname(p) == bed.incoming and p.endswith(".json")]
    assert sorted(new) == sorted(entries), sorted(new)
    for path in entries:
        with open(path) as handle:
            entry = json.load(handle)
        assert entry["dump_dir"].startswith(bed.dumps + "/"), entry  # redirected below the dump root
        assert "-redirected-" in entry["dump_dir"]
    for path, meta in before.items():
        assert after.get(path) == meta, path


@pytest.fixture
def spool_ready(bed):
    os.makedirs(bed.queue, exist_ok=True)
    os.chmod(bed.queue, 0o700)
    with open(FIXTURE_VENDOR) as handle:  # the vendor writes where it is told: it must be told safely
        bed.write_vendor(handle.read())
    return bed


@pytest.mark.parametrize("outside_roots", [False, True], ids=["default", "write_outside_roots"])
@pytest.mark.parametrize("user", [NOBODY, None], ids=["nobody", "root"])
@pytest.mark.parametrize("label", TARGETS)
def test_hook_never_writes_into_spool_or_state(spool_ready, user, outside_roots, label):
    bed = spool_ready
    bed.write_config({"hook": {"write_outside_roots": outside_roots}})
    path = _targets(bed)[label]
    before = _snapshot(bed.spool, bed.state)
    proc = _run(bed, bed.runtime_argv(path), user)
    _check_nothing_written(bed, before, proc)
    assert b"uploader's spool or state" in proc.stderr or b"'..'" in proc.stderr, (label, proc.stderr)


@pytest.mark.parametrize("user", [NOBODY, None], ids=["nobody", "root"])
def test_relative_dir_from_a_cwd_in_the_spool_is_refused(spool_ready, user):
    bed = spool_ready
    bed.write_config({"hook": {"write_outside_roots": True}})
    before = _snapshot(bed.spool, bed.state)
    proc = _run(bed, bed.runtime_argv("incoming/dt-rel-cid-0"), user, cwd=bed.spool)
    _check_nothing_written(bed, before, proc)


def test_a_root_owned_link_into_the_spool_is_refused_by_identity(spool_ready, tmp_path):
    """Outside the roots the hook follows root-owned links; one that leads into the spool is
    still caught, by comparing the opened directory (and its parents) with the spool's."""
    bed = spool_ready
    bed.write_config({"hook": {"write_outside_roots": True}})
    link = os.path.join(bed.base, "scratch")
    os.symlink(bed.incoming, link)  # made by root, like an admin's convenience link
    before = _snapshot(bed.spool, bed.state)
    proc = _run(bed, bed.runtime_argv(link), None)
    _check_nothing_written(bed, before, proc)
    assert b"uploader's spool or state" in proc.stderr


def test_a_dump_root_inside_the_state_dir_still_works(bed):
    """The role's layout: the dump root /var/lib/neuron-core-dump/dumps is below the state dir."""
    bed.write_config({"state_dir": bed.base})  # bed.dumps lies below it now
    dump = bed.dump_dir("dt-ok-cid-0")
    proc = _run(bed, bed.runtime_argv(dump), NOBODY)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    assert [n for n in os.listdir(dump) if "-ncd-" in n]
    refused = os.path.join(bed.base, "elsewhere-in-state")
    proc = _run(bed, bed.runtime_argv(refused), None)
    assert not os.path.exists(refused)
    assert b"uploader's spool or state" in proc.stderr


def test_outside_the_roots_nothing_is_written_by_default(bed, tmp_path):
    """hook.write_outside_roots is false by default: our record stays out of other places."""
    elsewhere = tmp_path / "scratch-dumps"
    proc = _run(bed, bed.runtime_argv(str(elsewhere)), None)
    assert proc.returncode == 0
    assert not elsewhere.exists() or not [n for n in os.listdir(elsewhere) if "-ncd-" in n]
    assert b"write_outside_roots is false" in proc.stderr


@pytest.mark.parametrize("where", ["outside the roots", "inside a dump root"])
def test_a_users_link_into_the_spool_is_refused(spool_ready, where):
    bed = spool_ready
    bed.write_config({"hook": {"write_outside_roots": True}})
    parent = os.path.dirname(bed.log) if where == "outside the roots" else bed.dumps  # 1777 / 1733
    link = os.path.join(parent, "dt-link-cid-0")
    subprocess.run(["/bin/ln", "-s", bed.incoming, link], preexec_fn=lambda: os.setuid(NOBODY), check=True, timeout=10)
    before = _snapshot(bed.spool, bed.state)
    proc = _run(bed, bed.runtime_argv(os.path.join(link, "rank0")), NOBODY)
    _check_nothing_written(bed, before, proc)
    assert b"symlink" in proc.stderr, proc.stderr
