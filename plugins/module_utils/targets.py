# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The places a workload can get the variables from: one registry entry per target.

Each entry knows its file(s), how to render them and how to parse them back.
core_dump iterates the registry to write (``plan``), core_dump_info iterates it
to read (``read``), so a new target is one entry here plus its format module.
Nothing here writes.

Adding a target (for example a CDI spec or a containers.conf.d drop-in):

1. a format module next to the others with ``render(values)`` (None: no file) and
   ``parse(data)`` ({name: value} of our variables), and its path in ``paths.py``;
2. one ``Target`` in ``REGISTRY``. Its name becomes a ``targets`` choice of
   core_dump, and core_dump_info reports its files and their drift by itself;
3. the documentation: the ``targets`` option of core_dump (its ``choices`` must
   match, ansible-test sanity checks that) and a changelog fragment.

test_targets.py renders and parses back every entry, and test_core_dump_info.py
checks that core_dump_info reports each one and finds its drift.
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


class Target:
    """One target: ``files`` lists (report name, path); ``render`` and ``parse`` are its format.

    ``render(before, values, expands)`` returns the new bytes (None: no file) and
    ``parse(data, expands)`` the {name: value} of our variables in ``data``.
    ``expands`` tells whether the running systemd resolves ``%`` specifiers.
    ``has_marker(data)`` is given for a file others write too: it tells whether our
    block is in it (such a file always exists; it counts as present when it sets
    one of our variables). ``per_unit`` targets have one file per service and are
    chosen by default only when services are given.
    """

    def __init__(self, name, files, render, parse, has_marker=None, per_unit=False):
        if not (callable(files) and callable(render) and callable(parse)):
            raise TypeError("target %s needs files, render and parse" % name)
        self.name = name
        self.files = files
        self.render = render
        self.parse = parse
        self.has_marker = has_marker
        self.per_unit = per_unit

    def presence(self, data, values):
        """(exists, managed) of one file read as ``data`` that sets ``values``."""
        if self.has_marker is None:
            return data is not None, data is not None
        return bool(values), data is not None and self.has_marker(data)


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


def _single(name, path_name):
    # Paths are read at call time so tests can move them (see paths.py).
    return lambda _units, _removing: [(name, getattr(paths, path_name))]


def _unit_files(units, removing):
    """Removing (state=absent) covers every unit that has our drop-in, not only ``units``."""
    chosen = {unit: unit_dropin_path(unit) for unit in units}
    if removing:
        chosen.update(managed_unit_dropins())
    return [("unit_dropin:%s" % unit, chosen[unit]) for unit in sorted(chosen)]


REGISTRY = (
    Target(
        ENVIRONMENT,
        _single(ENVIRONMENT, "ETC_ENVIRONMENT"),
        lambda before, values, _expands: etc_environment.render(before, values),
        lambda data, _expands: etc_environment.managed_values(data),
        has_marker=etc_environment.has_marker,
    ),
    Target(
        PROFILE,
        _single(PROFILE, "PROFILE_SCRIPT"),
        lambda _before, values, _expands: profile_script.render(values),
        lambda data, _expands: profile_script.parse(data),
    ),
    Target(
        SYSTEMD_MANAGER,
        _single(SYSTEMD_MANAGER, "MANAGER_DROPIN"),
        lambda _before, values, expands: systemd_dropin.render_manager(values, expands),
        systemd_dropin.parse_manager,
    ),
    Target(
        UNITS,
        _unit_files,
        lambda _before, values, _expands: systemd_dropin.render_unit(values),
        lambda data, _expands: systemd_dropin.parse_unit(data),
        per_unit=True,
    ),
)
BY_NAME = {target.name: target for target in REGISTRY}
ALL = tuple(BY_NAME)


def default_targets(units):
    """Every target, except per-unit ones when no service is given."""
    return [t.name for t in REGISTRY if units or not t.per_unit]


def plan(chosen, values, units, manager_expands_specifiers=True):
    """FileChange per file of the chosen targets for ``values`` (None: remove ours)."""
    changes = []
    for target in REGISTRY:
        if target.name not in chosen:
            continue
        for _report_name, path in target.files(units, values is None):
            before = filewriter.read_bytes(path)
            after = target.render(before, values, manager_expands_specifiers)
            changes.append(filewriter.FileChange(target.name, path, before, after))
    return changes


def read(units, manager_expands_specifiers=True):
    """(target, report name, path, bytes or None, {name: value}) for every file of every target."""
    found = []
    for target in REGISTRY:
        for report_name, path in target.files(units, False):
            data = filewriter.read_bytes(path)
            values = target.parse(data, manager_expands_specifiers) if data is not None else {}
            found.append((target, report_name, path, data, values))
    return found
