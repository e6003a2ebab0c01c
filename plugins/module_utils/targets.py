# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The places a workload can get the variables from: one registry entry per target.

Each entry knows its file(s), how to render them and how to parse them back.
core_dump iterates the registry to write (``plan``), core_dump_info iterates it
to read (``read``), so a new target is one entry here plus its format module.
Nothing here writes.

Container targets (``cdi``, ``podman``) carry what a container gets
(``Target.carries``), not the host's values, and are opt-in (docs/containers.md).

Adding a target (for example a CRI-O drop-in):

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
    cdi_spec,
    container_area,
    containers_conf,
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
CDI = "cdi"
PODMAN = "podman"

# Report names of the two CDI spec directories (paths.py holds the paths).
CDI_DIRS = (("/etc/cdi", "CDI_SPEC_DIR_ETC"), ("/var/run/cdi", "CDI_SPEC_DIR_RUN"))


class Target:
    """One target: ``files`` lists (report name, path); ``render`` and ``parse`` are its format.

    ``render(before, values, expands)`` returns the new bytes (None: no file) and
    ``parse(data, expands)`` the {name: value} of our variables in ``data``.
    ``expands`` tells whether the running systemd resolves ``%`` specifiers.
    ``has_marker(data)`` is given for a file others write too: it tells whether our
    block is in it (such a file always exists; it counts as present when it sets
    one of our variables). ``per_unit`` targets have one file per service and are
    chosen by default only when services are given.

    ``container`` targets configure containers: they carry
    ``container_area.container_values(values)`` rather than ``values`` itself, are
    never chosen by default (only with state=absent) and need the container dump
    area. ``wanted(path)`` is given for a target with several candidate files of
    which only one is written (the others are removed).
    """

    def __init__(self, name, files, render, parse, has_marker=None, per_unit=False, container=False, wanted=None):
        if not (callable(files) and callable(render) and callable(parse)):
            raise TypeError("target %s needs files, render and parse" % name)
        self.name = name
        self.files = files
        self.render = render
        self.parse = parse
        self.has_marker = has_marker
        self.per_unit = per_unit
        self.container = container
        self.wanted = wanted

    def carries(self, values):
        """The variables this target's file holds when core_dump writes ``values``."""
        return container_area.container_values(values) if self.container else values

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


def cdi_spec_path(directory):
    return os.path.join(directory, paths.CDI_SPEC_NAME)


def _cdi_files(_units, _removing):
    # Both directories always: the one chosen is written, ours in the other is removed
    # (a second spec for the same device would shadow or be shadowed by it).
    return [("cdi:%s" % label, cdi_spec_path(getattr(paths, name))) for label, name in CDI_DIRS]


def _cdi_wanted(path):
    return path == cdi_spec_path(paths.CDI_SPEC_DIR)


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
    Target(
        CDI,
        _cdi_files,
        lambda _before, values, _expands: cdi_spec.render(values, container_area.shared_dir()),
        lambda data, _expands: cdi_spec.parse(data),
        container=True,
        wanted=_cdi_wanted,
    ),
    Target(
        PODMAN,
        _single(PODMAN, "PODMAN_DROPIN"),
        lambda _before, values, _expands: containers_conf.render(values, container_area.shared_dir()),
        lambda data, _expands: containers_conf.parse(data),
        container=True,
    ),
)
BY_NAME = {target.name: target for target in REGISTRY}
ALL = tuple(BY_NAME)


CONTAINER_TARGETS = tuple(t.name for t in REGISTRY if t.container)


def installed_container_targets():
    """Container targets that have one of our files on disk (found by their fixed names)."""
    return [t.name for t in REGISTRY if t.container and any(os.path.lexists(p) for _n, p in t.files([], True))]


def default_targets(units):
    """Every host target (per-unit ones only when services are given), and the container targets already in use.

    Container targets are opt-in: chosen by default only once our file exists, so
    that enable/disable without ``targets`` keep containers in step with the host.
    """
    chosen = [t.name for t in REGISTRY if (units or not t.per_unit) and not t.container]
    return chosen + installed_container_targets()


def existing_container_settings():
    """(cdi_spec_dir label, area path) that our files on disk use; None for what is not found."""
    label = area = None
    for candidate, name in CDI_DIRS:
        data = filewriter.read_bytes(cdi_spec_path(getattr(paths, name)))
        if data is None:
            continue
        label = label or candidate
        for mount in cdi_spec.mounts(data):
            if mount.get("containerPath") == container_area.CONTAINER_MOUNT:
                area = area or container_area.area_of(mount.get("hostPath"))
    for volume in containers_conf.arrays(filewriter.read_bytes(paths.PODMAN_DROPIN)).get("volumes", []):
        source, _sep, rest = volume.partition(":")
        if rest.split(":", 1)[0] == container_area.CONTAINER_MOUNT:
            area = area or container_area.area_of(source)
    return label, area


def use_container_paths(cdi_spec_dir=None, container_dump_dir=None, derive=False):
    """Point the container targets at core_dump's cdi_spec_dir and container_dump_dir options.

    With ``derive`` (no ``targets`` given, so the container targets are chosen
    because our files exist) the files keep the directory and area they use, so
    a plain enable/disable does not move what the dump_env role placed.
    Returns (cdi_spec_dir, container_dump_dir) in effect; the second is None when
    derived from disk (it was checked when written; the disk checks still run).
    The option values are real paths; ``paths`` may have been moved by tests,
    so each known default maps to its (possibly moved) ``paths`` name.
    """
    if derive:
        label, area = existing_container_settings()
        if label is not None:
            cdi_spec_dir = label
        if area is not None:
            paths.CONTAINER_DUMP_AREA = area
            container_dump_dir = None
    if cdi_spec_dir is not None:
        paths.CDI_SPEC_DIR = {label: getattr(paths, name) for label, name in CDI_DIRS}[cdi_spec_dir]
    if container_dump_dir is not None and container_dump_dir != "/var/lib/neuron-core-dump/containers":
        paths.CONTAINER_DUMP_AREA = container_dump_dir
    return cdi_spec_dir, container_dump_dir


def plan(chosen, values, units, manager_expands_specifiers=True):
    """FileChange per file of the chosen targets for ``values`` (None: remove ours)."""
    changes = []
    for target in REGISTRY:
        if target.name not in chosen:
            continue
        for _report_name, path in target.files(units, values is None):
            before = filewriter.read_bytes(path)
            if target.wanted is None or target.wanted(path):
                after = target.render(before, values, manager_expands_specifiers)
            else:
                after = None
            changes.append(filewriter.FileChange(target.name, path, before, after))
    if container_area.enabled(container_area.container_values(values)) and any(
        BY_NAME[name].container for name in chosen
    ):
        # Before the files: a spec or drop-in that mounts a missing area stops every container it applies to.
        changes.insert(0, container_area.AreaChange(paths.CONTAINER_DUMP_AREA))
    return changes


def container_problems(chosen, state, cdi_spec_dir, container_dump_dir, local_dir):
    """Why the container targets in ``chosen`` cannot be written as asked; [] when they can."""
    chosen_container = [name for name in chosen if BY_NAME[name].container]
    if not chosen_container:
        return []
    found = []
    if state == "enabled":
        if container_dump_dir is not None:
            found.extend(container_area.option_problems(container_dump_dir, local_dir))
        if not found:
            found.extend(container_area.disk_problems(paths.CONTAINER_DUMP_AREA))
            found.extend(container_area.writable_problems("container_dump_dir", paths.CONTAINER_DUMP_AREA))
    if CDI in chosen_container:
        for label, name in CDI_DIRS:
            # The chosen directory is written; the other only when ours is there to remove.
            if (state != "absent" and label == cdi_spec_dir) or os.path.lexists(cdi_spec_path(getattr(paths, name))):
                found.extend(container_area.writable_problems("cdi_spec_dir", getattr(paths, name)))
    if PODMAN in chosen_container:
        found.extend(container_area.writable_problems("targets: podman", os.path.dirname(paths.PODMAN_DROPIN)))
    return found


def read(units, manager_expands_specifiers=True):
    """(target, report name, path, bytes or None, {name: value}) for every file of every target."""
    found = []
    for target in REGISTRY:
        for report_name, path in target.files(units, False):
            data = filewriter.read_bytes(path)
            values = target.parse(data, manager_expands_specifiers) if data is not None else {}
            found.append((target, report_name, path, data, values))
    return found
