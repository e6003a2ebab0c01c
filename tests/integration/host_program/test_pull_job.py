"""playbooks/pull_job.yml for fleets without S3: real ansible-playbook, two "hosts" over the local connection.

Each inventory host points at its own dump dir (neuron_core_dump_job_dirs, the override of
core_dump_info's list), with a non-UTF-8 name and a symlink to a root-only file that must
not be followed. core_dump_job_stage copies into a root-only staging dir, ansible.builtin.fetch
brings the copies over, core_dump_job_fetch (from_dir) verifies them against the hosts'
manifests and puts them in <dest>/<job>/<host>/.
"""

import hashlib
import json
import os
import subprocess
import sys

import pytest
from ncd_bed import REPO_ROOT

JOB = "dt-20260301-101500-cid-00000000000000aa"
ODD = b"core-\xff.bin"


def _dump(root, host):
    path = root / host / JOB
    path.mkdir(parents=True)
    (path / ("%s-nd0-nc0-pid-7" % host)).write_bytes(os.urandom(300_000))
    (path / "nrt.log").write_bytes(("log of %s\n" % host).encode())
    with open(os.path.join(os.fsencode(path), ODD), "wb") as handle:
        handle.write(b"odd name")
    os.symlink("/etc/shadow", path / "evil-link")
    return path


def _pull(tmp_path, hosts, *extra):
    inventory = {
        "all": {
            "hosts": {
                name: {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                    "ansible_become": False,
                    "neuron_core_dump_job_dirs": [str(path)] if path else [],
                    "neuron_core_dump_staging_dir": str(tmp_path / ("staging-" + name)),
                }
                for name, path in hosts.items()
            }
        }
    }
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO_ROOT, ".bed", "collections"))
    env["ANSIBLE_LOCALHOST_WARNING"] = "false"
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(tmp_path / "inventory.json")]
    argv += ["neuron_ops.core_dump.pull_job", "-e", "neuron_core_dump_job=%s" % JOB]
    argv += ["-e", "neuron_core_dump_fetch_dest=%s" % (tmp_path / "dest"), *extra]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)


def _sha(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.mark.skipif(os.geteuid() != 0, reason="the staging dir check needs the files' owner to be root here")
def test_pull_reassembles_the_job_without_following_links_and_fails_on_a_missing_host(tmp_path):
    sources = {host: _dump(tmp_path / "hosts", host) for host in ("trn-1", "trn-2")}
    proc = _pull(tmp_path, sources)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job_dir = tmp_path / "dest" / JOB
    for host, source in sources.items():
        placed = sorted(os.listdir(os.fsencode(job_dir / host)))
        assert placed == sorted([b"%s-nd0-nc0-pid-7" % host.encode(), b"nrt.log", ODD])
        for name in placed:
            assert _sha(os.path.join(os.fsencode(job_dir / host), name)) == _sha(
                os.path.join(os.fsencode(source), name)
            )
        manifest = json.loads((job_dir / (host + "-manifest.json")).read_text())
        assert [s["reason"] for s in manifest["skipped"]] == ["symlink: not followed"]
    assert not (job_dir / ".incoming").exists()
    assert not (tmp_path / "staging-trn-1").exists() and not (tmp_path / "staging-trn-2").exists()
    # a host the fleet report says holds the job, and that has nothing now: missing, non-zero exit
    report = {"jobs": [{"job": JOB, "by_host": {"trn-3": {"state": "local_only", "reason": None}}}]}
    (tmp_path / "fleet-report.json").write_text(json.dumps(report))
    proc = _pull(
        tmp_path,
        dict(sources, **{"trn-3": None}),
        "-e",
        "neuron_core_dump_fleet_report=%s" % (tmp_path / "fleet-report.json"),
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "host trn-3: no manifest (local_only per the fleet report)" in proc.stdout
