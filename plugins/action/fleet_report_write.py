# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fleet_report_write: both report files written by the controller process itself.

Two ansible.builtin.copy tasks on localhost cost four module processes (a stat and a copy
each); this writes the same bytes in-process (filewriter: compare, then write atomically).
"""

from __future__ import annotations

import json
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import filewriter
from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils.fleet_report import render_markdown

MODE = 0o644


def report_files(report, directory):
    """[(path, bytes)] of fleet-report.json (the bytes to_nice_json gives) and fleet-report.md."""
    text = json.dumps(report, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"
    return [
        (os.path.join(directory, "fleet-report.json"), text.encode("utf-8")),
        (os.path.join(directory, "fleet-report.md"), render_markdown(report).encode("utf-8")),
    ]


def _mode_differs(path):
    return (os.stat(path).st_mode & 0o7777) != MODE


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("report", "dest_dir"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        report, directory = self._task.args.get("report"), self._task.args.get("dest_dir")
        if not isinstance(report, dict) or not isinstance(directory, str) or not directory:
            raise AnsibleActionFail("fleet_report_write needs report (a fleet report) and dest_dir (a directory)")
        files = report_files(report, os.path.expanduser(directory))
        changes, diffs = [], []
        for path, data in files:
            try:
                change = filewriter.FileChange(None, path, filewriter.read_bytes(path), data, mode=MODE)
                if change.changed:
                    diffs.append(change.diff())
                if change.changed or _mode_differs(path):
                    changes.append(change)
            except OSError as exc:
                raise AnsibleActionFail("cannot read %s: %s" % (path, exc)) from exc
        if not self._task.check_mode:
            for change in changes:
                try:
                    change.apply()
                    os.chmod(change.path, MODE)
                except OSError as exc:
                    raise AnsibleActionFail("cannot write %s: %s" % (change.path, exc)) from exc
        result.update(changed=bool(changes), files=[path for path, _data in files])
        if self._task.diff:
            result["diff"] = diffs
        return result
