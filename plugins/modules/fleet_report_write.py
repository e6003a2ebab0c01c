#!/usr/bin/python
# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_report_write
short_description: Write fleet-report.json and fleet-report.md on the controller
version_added: 0.1.0
description:
  - Used by the C(neuron_ops.core_dump.verify) playbook. Writes the fleet report built by the
    P(neuron_ops.core_dump.fleet_report#filter) filter as C(fleet-report.json) (the bytes C(to_nice_json) gives,
    and a newline) and C(fleet-report.md) (P(neuron_ops.core_dump.fleet_report_markdown#filter)) into O(dest_dir).
  - An action plugin that runs in the controller's own process, so the report costs no module process; each file
    is written (atomically) only when its bytes or its mode (C(0644)) differ.
author:
  - neuron_ops developers (@neuron-ops)
options:
  report:
    description:
      - The fleet report.
    type: dict
    required: true
  dest_dir:
    description:
      - The existing directory on the controller that receives both files.
    type: path
    required: true
extends_documentation_fragment:
  - neuron_ops.core_dump.attributes
attributes:
  check_mode:
    description: Compares both files and reports whether they would change. It writes nothing.
  diff_mode:
    support: full
    description: The text of each changed file before and after.
  platform:
    description: The controller; the file system of the host the play runs on is not touched.
notes:
  - The action runs on the controller whatever host the task targets.
"""

EXAMPLES = r"""
- name: Write fleet-report.json and fleet-report.md
  neuron_ops.core_dump.fleet_report_write:
    report: "{{ neuron_core_dump_fleet_report }}"
    dest_dir: "{{ lookup('ansible.builtin.env', 'PWD') }}"
"""

RETURN = r"""
files:
  description: The two paths, the JSON report first.
  returned: always
  type: list
  elements: str
  sample: ["/home/ops/fleet-report.json", "/home/ops/fleet-report.md"]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def main():
    # The work is done by the action plugin (plugins/action/fleet_report_write.py) on the
    # controller; this module only carries the documentation.
    module = AnsibleModule(
        argument_spec={"report": {"type": "dict", "required": True}, "dest_dir": {"type": "path", "required": True}},
        supports_check_mode=True,
    )
    module.fail_json(msg="fleet_report_write runs as an action plugin on the controller")


if __name__ == "__main__":
    main()
