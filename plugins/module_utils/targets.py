# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The four places a workload can get the variables from, and what each must contain.

Each target knows its path(s) and which format module renders and parses it.
``plan`` returns FileChange objects; nothing here writes.
"""

from __future__ import annotations

import glob
import os

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import (
    etc_environment,
    filewriter,
    paths,
    profile_script,
    systemd_dropin,
)

ENVIRONMENT = "environment"
PROFILE = "profile"
SYSTEMD_MANAGER = "systemd_manager"
UNITS = "units"
ALL = (ENVIRONMENT, PROFILE, SYSTEMD_MANAGER, UNITS)


def default_targets(units):
    chosen = [ENVIRONMENT, PROFILE, SYSTEMD_MANAGER]
    if units:
        chosen.append(UNITS)
    return chosen


def unit_dropin_path(unit):
    return os.path.join(paths.UNIT_DROPIN_ROOT, unit + ".d", paths.UNIT_DROPIN_NAME)


def managed_unit_dropins():
    """{unit: path} of every unit drop-in we wrote (found by its fixed file name)."""
    found = {}
    pattern = os.path.join(glob.escape(paths.UNIT_DROPIN_ROOT), "*.d", glob.escape(paths.UNIT_DROPIN_NAME))
    for path in sorted(glob.glob(pattern)):
        unit = os.path.basename(os.path.dirname(path))[: -len(".d")]
        found[unit] = path
    return found


def plan(chosen, values, units, manager_expands_specifiers=True):
    """FileChange per file of the chosen targets for ``values`` (None: remove ours).

    With ``values`` None (state=absent) the units target covers every unit that
    has our drop-in, not only ``units``.
    """
    changes = []
    if ENVIRONMENT in chosen:
        before = filewriter.read_bytes(paths.ETC_ENVIRONMENT)
        changes.append(
            filewriter.FileChange(ENVIRONMENT, paths.ETC_ENVIRONMENT, before, etc_environment.render(before, values))
        )
    if PROFILE in chosen:
        changes.append(
            filewriter.FileChange(
                PROFILE,
                paths.PROFILE_SCRIPT,
                filewriter.read_bytes(paths.PROFILE_SCRIPT),
                profile_script.render(values),
            )
        )
    if SYSTEMD_MANAGER in chosen:
        changes.append(
            filewriter.FileChange(
                SYSTEMD_MANAGER,
                paths.MANAGER_DROPIN,
                filewriter.read_bytes(paths.MANAGER_DROPIN),
                systemd_dropin.render_manager(values, manager_expands_specifiers),
            )
        )
    if UNITS in chosen:
        unit_paths = {unit: unit_dropin_path(unit) for unit in units}
        if values is None:
            unit_paths.update(managed_unit_dropins())
        for unit in sorted(unit_paths):
            path = unit_paths[unit]
            changes.append(
                filewriter.FileChange(UNITS, path, filewriter.read_bytes(path), systemd_dropin.render_unit(values))
            )
    return changes
