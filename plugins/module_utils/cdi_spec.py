# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The static CDI spec: ``--device neuron-ops.io/core-dump=default`` gives a container the settings.

CDI (Container Device Interface) specs live in ``/etc/cdi`` or ``/var/run/cdi``
and are read by Podman >= 4.1, CRI-O, containerd >= 1.7 (``enable_cdi``) and
Docker >= 25. Podman 4.3 (Debian 12) vendors container-device-interface v0.5.2,
which accepts ``cdiVersion`` 0.1.0 to 0.5.0 and rejects unknown fields
(``yaml.UnmarshalStrict``); current releases accept 0.3.0 and later. So the
spec is 0.5.0 and uses only 0.3.0 fields (env, mounts): every runtime reads it.

JSON is written (a subset of YAML, and CDI reads ``.json``). The device must
keep at least one edit (an empty device is invalid), so the disabled spec keeps
both variables as ``""``: a container that requests the device still starts.
"""

from __future__ import annotations

import json

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import container_area, contract, paths

CDI_VERSION = "0.5.0"
# Versions Podman 4.3's CDI library reads; the lowest current libraries read is 0.3.0.
READABLE_BY_ALL = ("0.3.0", "0.4.0", "0.5.0")
VENDOR = "neuron-ops.io"
CLASS = "core-dump"
KIND = VENDOR + "/" + CLASS
DEVICE = "default"
DEVICE_REQUEST = KIND + "=" + DEVICE


def mount(area_shared):
    return {
        "hostPath": area_shared,
        "containerPath": container_area.CONTAINER_MOUNT,
        "type": "bind",
        "options": ["bind", *container_area.MOUNT_OPTIONS],
    }


# An OCI hook that fails or is missing aborts the container: the hook is run through the host's
# /bin/sh, which calls the host program only when it is installed and always exits 0, so a host
# without it (or with it removed later) still starts every container, with the shared directory.
HOOK_SHELL = "/bin/sh"
HOOK_SCRIPT = '[ -x "$0" ] && "$0" oci-hook --area "$1"; exit 0'


def hook(program, area_shared):
    """The ``createContainer`` hook that gives each container its own dump directory (CDI 0.5.0 field).

    ``program`` is the host program's CLI (``neuron-core-dump``); see its ``oci_hook`` module.
    """
    area = container_area.area_of(area_shared)
    return {"hookName": "createContainer", "path": HOOK_SHELL, "args": ["sh", "-c", HOOK_SCRIPT, program, area]}


def render(host_values, area_shared, hook_program=paths.HOST_PROGRAM):
    """Spec bytes for the host's values (None: no spec); with ``hook_program``, per-container directories."""
    carried = container_area.container_values(host_values)
    if carried is None:
        return None
    edits = {"env": ["%s=%s" % (name, carried[name]) for name in contract.MANAGED_VARS]}
    if container_area.enabled(carried):
        edits["mounts"] = [mount(area_shared)]
        if hook_program:
            edits["hooks"] = [hook(hook_program, area_shared)]
    spec = {"cdiVersion": CDI_VERSION, "kind": KIND, "devices": [{"name": DEVICE, "containerEdits": edits}]}
    return (json.dumps(spec, indent=2) + "\n").encode("utf-8")


def _load(data):
    try:
        spec = json.loads((data or b"").decode("utf-8"))
    except ValueError:
        return None
    return spec if isinstance(spec, dict) else None


def _list(value):
    return value if isinstance(value, list) else []


def _device_edits(spec):
    for device in _list(spec.get("devices")):
        if isinstance(device, dict) and device.get("name") == DEVICE:
            edits = device.get("containerEdits")
            return edits if isinstance(edits, dict) else {}
    return None


def mounts(data):
    """The mounts of our device in a spec file (dicts), [] when none or unreadable."""
    spec = _load(data)
    edits = _device_edits(spec) if spec is not None else None
    return [m for m in _list((edits or {}).get("mounts")) if isinstance(m, dict)]


def parse(data):
    """Our variables as a container requesting the device gets them: {name: value}."""
    spec = _load(data)
    if spec is None:
        return {}
    found = {}
    # Spec-wide edits apply first, the device's after them (they win).
    for edits in (spec.get("containerEdits"), _device_edits(spec)):
        for entry in _list(edits.get("env")) if isinstance(edits, dict) else []:
            name, eq, value = str(entry).partition("=")
            if eq and name in contract.MANAGED_VARS:
                found[name] = value
    return found


def problems(data, area_shared):
    """Why a spec file is not one every listed runtime reads with the effect we want; [] when fine."""
    spec = _load(data)
    if spec is None:
        return ["not a JSON object"]
    found = []
    if spec.get("cdiVersion") not in READABLE_BY_ALL:
        found.append(
            "cdiVersion %r: Podman 4.3 reads at most 0.5.0 and current runtimes at least 0.3.0"
            % (spec.get("cdiVersion"),)
        )
    if spec.get("kind") != KIND:
        found.append("kind %r, expected %r" % (spec.get("kind"), KIND))
    edits = _device_edits(spec)
    if edits is None:
        return [*found, "no device %r" % DEVICE]
    variables = parse(data)
    missing = [n for n in contract.MANAGED_VARS if n not in variables]
    if missing:
        found.append("does not set %s" % ", ".join(missing))
    if variables.get(contract.S3_PREFIX_VAR):
        found.append("sets %s: the image's hook would upload with the container's credentials" % contract.S3_PREFIX_VAR)
    if variables.get(contract.LOCAL_DIR_VAR):
        if variables[contract.LOCAL_DIR_VAR] != container_area.CONTAINER_LOCAL_DIR:
            found.append(
                "%s is %r, not %r: the host uploader would not find the dumps"
                % (contract.LOCAL_DIR_VAR, variables[contract.LOCAL_DIR_VAR], container_area.CONTAINER_LOCAL_DIR)
            )
        if mount(area_shared) not in _list(edits.get("mounts")):
            found.append("enabled but does not bind-mount %s at %s" % (area_shared, container_area.CONTAINER_MOUNT))
    return found
