"""Run a module through real ansible-playbook on localhost (connection local) and read back what it returned."""

from __future__ import annotations

import json
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
COLLECTIONS = os.path.join(REPO_ROOT, ".bed", "collections")


def run_local_play(tmp_path, tasks, result, check=False, diff=False):
    """Run ``tasks``, then write the Jinja expression ``result`` (their registered results) as JSON.

    Returns (the ansible-playbook process, the parsed result or None when the play ended first).
    The result file is written with check_mode off, so check-mode runs report too."""
    out = tmp_path / "out.json"
    write = {"ansible.builtin.copy": {"content": "{{ %s | to_json }}" % result, "dest": str(out)}, "check_mode": False}
    play = tmp_path / "play.json"
    play.write_text(
        json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [*tasks, write]}])
    )
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path))
    env.update(ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    env.update(ANSIBLE_LOCALHOST_WARNING="false")
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(play)]
    argv += ["--check"] if check else []
    argv += ["--diff"] if diff else []
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    if not out.exists():
        return proc, None
    parsed = json.loads(out.read_text())
    out.unlink()
    return proc, parsed
