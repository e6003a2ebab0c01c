"""fleet_report_write through real ansible-playbook: the same bytes the two copy tasks wrote
(to_nice_json and the Markdown filter), written in the controller process, only when they
differ; check mode writes nothing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
COLLECTIONS = os.path.join(REPO_ROOT, ".bed", "collections")

RESULTS = {
    "a": {
        "effective_state": "enabled",
        "drift": [{"where": "profile", "reason": "value é|b"}],
        "restart_required": [],
        "host_status": None,
        "hook": {"kind": "ours", "version": "0.1.0"},
        "storage": [{"bytes": 10, "count": 1}],
    },
    "b": None,
}


def _play(tmp_path, check=False):
    """Build the report, write it with the action and, for comparison, with the two copy tasks verify.yml had."""
    play = tmp_path / "play.json"
    reference = tmp_path / "reference"
    reference.mkdir(exist_ok=True)
    report = "{{ results | neuron_ops.core_dump.fleet_report('enabled') }}"
    play.write_text(
        json.dumps(
            [
                {
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "vars": {"results": RESULTS},
                    "tasks": [
                        {
                            "neuron_ops.core_dump.fleet_report_write": {"report": report, "dest_dir": str(tmp_path)},
                            "register": "out",
                        },
                        {
                            "ansible.builtin.copy": {
                                "content": "%s\n" % report.replace("}}", "| to_nice_json }}"),
                                "dest": str(reference / "fleet-report.json"),
                                "mode": "0644",
                            },
                            "check_mode": False,
                        },
                        {
                            "ansible.builtin.copy": {
                                "content": report.replace("}}", "| neuron_ops.core_dump.fleet_report_markdown }}"),
                                "dest": str(reference / "fleet-report.md"),
                                "mode": "0644",
                            },
                            "check_mode": False,
                        },
                        {
                            "ansible.builtin.copy": {"content": "{{ out | to_json }}", "dest": str(tmp_path / "out")},
                            "check_mode": False,
                        },
                    ],
                }
            ]
        )
    )
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path))
    env.update(ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_LOCALHOST_WARNING="false")
    env.update(ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(play), "--diff"]
    argv += ["--check"] if check else []
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((tmp_path / "out").read_text()), reference


def test_writes_the_bytes_the_copy_tasks_wrote_then_nothing(tmp_path):
    out, _reference = _play(tmp_path, check=True)
    assert out["changed"] and not (tmp_path / "fleet-report.json").exists()
    out, reference = _play(tmp_path)
    assert out["changed"]
    for name in ("fleet-report.json", "fleet-report.md"):
        written = tmp_path / name
        assert written.read_bytes() == (reference / name).read_bytes(), name
        assert stat.S_IMODE(written.stat().st_mode) == 0o644
    assert json.loads((tmp_path / "fleet-report.json").read_text())["drifting_hosts"]
    inode = (tmp_path / "fleet-report.md").stat().st_ino
    out, _reference = _play(tmp_path)
    assert not out["changed"] and (tmp_path / "fleet-report.md").stat().st_ino == inode
