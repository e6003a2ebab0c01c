# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which container runtimes a host has, their versions, and whether each reads CDI specs.

What reads CDI (docs/containers.md): Podman >= 4.1 (always on), CRI-O >= 1.23
(on), containerd 1.7 with ``enable_cdi = true`` in the CRI plugin, containerd
2.x (on unless ``enable_cdi = false``), Docker 25 to 28.1 with
``"features": {"cdi": true}`` in daemon.json, Docker >= 28.2 (on). Only the
configuration files are read here (no daemon is contacted), so a value set on a
daemon's command line is not seen; the report says where each answer came from.
"""

from __future__ import annotations

import json
import re

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import containerd_config, filewriter, paths

# Named in messages; the files read are paths.CONTAINERD_CONFIG and paths.DOCKER_DAEMON_JSON.
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
DOCKER_DAEMON_JSON = "/etc/docker/daemon.json"

# (name, binary, version argv tail)
RUNTIMES = (
    ("podman", "podman", ["--version"]),
    ("docker", "docker", ["--version"]),
    ("containerd", "containerd", ["--version"]),
    ("cri-o", "crio", ["--version"]),
)

# cgroup scope/dir names of a container's processes, per runtime: <prefix><64 hex>.
_CGROUP_ID = re.compile(r"(libpod|docker|cri-containerd|crio)-([0-9a-f]{64})(?:\.scope)?$")
_CGROUP_PLAIN_ID = re.compile(r"/(docker|kubepods[^:]*?)/(?:.*/)?([0-9a-f]{64})$")
_RUNTIME_OF_PREFIX = {"libpod": "podman", "docker": "docker", "cri-containerd": "containerd", "crio": "cri-o"}


def parse_version(text):
    """The first dotted version number in a ``--version`` output, as a tuple of ints (or None)."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not match:
        return None
    return tuple(int(part) for part in match.groups(default="0"))


def version_text(version):
    return ".".join(str(part) for part in version) if version else None


def containerd_cdi(version, config_text):
    """(enabled, why) for containerd from its version and config.toml text.

    The file is read by containerd_config, the same reader the containerd_cdi module
    edits with: ``enable_cdi`` counts only in the CRI plugin's table for the file's
    config version (a stray key elsewhere is ignored, as containerd ignores it).
    """
    if version is None:
        return None, "version unknown"
    if version < (1, 7):
        return False, "containerd before 1.7 has no CDI"
    setting, where = containerd_config.cdi_setting(config_text, version)
    if setting is None and where != "not set":
        return None, where
    if version >= (2, 0):
        if setting is False:
            return False, "containerd 2.x with %s in %s" % (where, CONTAINERD_CONFIG)
        return True, "containerd 2.x reads CDI by default"
    if setting:
        return True, "%s in %s" % (where, CONTAINERD_CONFIG)
    return False, "containerd 1.7 needs enable_cdi = true in the CRI plugin section of %s" % CONTAINERD_CONFIG


def docker_cdi(version, daemon_json_text):
    """(enabled, why) for Docker from its version and daemon.json text."""
    feature = None
    if daemon_json_text:
        try:
            data = json.loads(daemon_json_text)
        except ValueError:
            return None, "%s is not valid JSON" % DOCKER_DAEMON_JSON
        features = data.get("features") if isinstance(data, dict) else None
        if isinstance(features, dict) and "cdi" in features:
            feature = features["cdi"] is True
    if version is None:
        return None, "version unknown"
    if version >= (28, 2):
        if feature is False:
            return False, "features.cdi is false in %s" % DOCKER_DAEMON_JSON
        return True, "Docker >= 28.2 reads CDI by default"
    if version >= (25, 0):
        if feature:
            return True, "features.cdi is true in %s" % DOCKER_DAEMON_JSON
        return False, 'Docker 25 to 28.1 needs "features": {"cdi": true} in %s' % DOCKER_DAEMON_JSON
    return False, "Docker before 25 has no CDI"


def podman_cdi(version):
    if version is None:
        return None, "version unknown"
    if version >= (4, 1):
        return True, "Podman >= 4.1 reads CDI (Podman 4.3 reads cdiVersion <= 0.5.0)"
    return False, "Podman before 4.1 has no CDI"


def crio_cdi(version):
    if version is None:
        return None, "version unknown"
    if version >= (1, 23):
        return True, "CRI-O >= 1.23 reads CDI"
    return False, "CRI-O before 1.23 has no CDI"


def detect(module):
    """[{name, binary, version, cdi, cdi_reason}] of the runtimes whose binary is on this host."""
    found = []
    for name, binary, argv in RUNTIMES:
        path = module.get_bin_path(binary)
        if not path:
            continue
        rc, out, err = module.run_command([path, *argv], environ_update={"LC_ALL": "C"})
        version = parse_version(out) if rc == 0 else None
        if name == "podman":
            cdi, why = podman_cdi(version)
        elif name == "docker":
            cdi, why = docker_cdi(version, _text(paths.DOCKER_DAEMON_JSON))
        elif name == "containerd":
            cdi, why = containerd_cdi(version, _text(paths.CONTAINERD_CONFIG))
        else:
            cdi, why = crio_cdi(version)
        found.append(
            {
                "name": name,
                "binary": path,
                "version": version_text(version),
                "version_error": None if rc == 0 else (err or out).strip()[:200] or "rc=%d" % rc,
                "cdi": cdi,
                "cdi_reason": why,
            }
        )
    return found


def _text(path):
    try:
        data = filewriter.read_bytes(path)
    except OSError:
        return None
    return None if data is None else data.decode("utf-8", "replace")


def container_of(cgroup_text):
    """(runtime, container id) of a process from its /proc/<pid>/cgroup text, or (None, None)."""
    for line in (cgroup_text or "").splitlines():
        path = line.split(":", 2)[-1]
        for part in reversed(path.split("/")):
            match = _CGROUP_ID.match(part)
            if match:
                return _RUNTIME_OF_PREFIX[match.group(1)], match.group(2)
        match = _CGROUP_PLAIN_ID.search(path)
        if match:
            return ("docker" if match.group(1) == "docker" else "kubernetes"), match.group(2)
    return None, None
