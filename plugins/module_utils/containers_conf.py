# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Podman's ``/etc/containers/containers.conf.d/`` drop-in: the settings for every new container.

containers.conf is TOML; each file of the ``.d`` directory is decoded over the
previous ones, so an array set here REPLACES the one before it. ``env``
replaces Podman's built-in default (``PATH=...`` and ``TERM=xterm``), which is
why the drop-in lists those two again. An admin's own ``env``/``volumes`` in
``containers.conf`` are replaced too (docs/containers.md says so).

Podman applies containers.conf ``env`` first; the image's ``ENV`` and
``--env`` override it. Podman reads no drop-in when ``CONTAINERS_CONF`` is set.
"""

from __future__ import annotations

import json

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import container_area, contract

HEADER = (
    "# Managed by the neuron_ops.core_dump core_dump module; local changes are overwritten.\n"
    "# Neuron runtime core dumps: every new Podman container writes into the host's container dump area.\n"
)
# Podman's built-in [containers] env (containers/common pkg/config/default.go), kept because ours replaces it.
PODMAN_DEFAULT_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm")


def volume(area_shared):
    return "%s:%s:%s" % (area_shared, container_area.CONTAINER_MOUNT, ",".join(container_area.MOUNT_OPTIONS))


def _array(key, items):
    # Our strings are printable ASCII without quotes or backslashes (values.py,
    # container_area.option_problems), so a JSON string is the same TOML basic string.
    return "%s = [\n%s]\n" % (key, "".join("  %s,\n" % json.dumps(item) for item in items))


def render(host_values, area_shared):
    carried = container_area.container_values(host_values)
    if carried is None:
        return None
    env = list(PODMAN_DEFAULT_ENV) + ["%s=%s" % (name, carried[name]) for name in contract.MANAGED_VARS]
    text = HEADER + "[containers]\n" + _array("env", env)
    if container_area.enabled(carried):
        text += _array("volumes", [volume(area_shared)])
    return text.encode("utf-8")


def _skip(text, pos):
    """Skip whitespace, newlines, commas and comments."""
    while pos < len(text):
        if text[pos] in " \t\r\n,":
            pos += 1
        elif text[pos] == "#":
            while pos < len(text) and text[pos] != "\n":
                pos += 1
        else:
            break
    return pos


def _string(text, pos):
    """A TOML basic ("...") or literal ('...') string at ``pos``: (value, end) or (None, pos)."""
    quote = text[pos]
    if quote == "'":
        end = text.find("'", pos + 1)
        return (None, pos) if end < 0 else (text[pos + 1 : end], end + 1)
    end = pos + 1
    while end < len(text) and text[end] != '"':
        end += 2 if text[end] == "\\" else 1
    if end >= len(text):
        return None, pos
    try:
        return json.loads(text[pos : end + 1]), end + 1
    except ValueError:
        return None, pos


def arrays(data, table="containers"):
    """{key: [strings]} of the string arrays in ``[table]`` (enough for env and volumes)."""
    text = (data or b"").decode("utf-8", "replace")
    found = {}
    current = None
    pos = 0
    while pos < len(text):
        line_end = text.find("\n", pos)
        line_end = len(text) if line_end < 0 else line_end
        line = text[pos:line_end].strip()
        if line.startswith("["):
            current = line.strip("[] \t").strip()
            pos = line_end + 1
            continue
        key, eq, rest = line.partition("=")
        if current == table and eq and rest.strip().startswith("["):
            cursor = text.index("[", pos + len(key) + 1) + 1
            items = []
            while True:
                cursor = _skip(text, cursor)
                if cursor >= len(text) or text[cursor] == "]":
                    break
                if text[cursor] not in "\"'":
                    break
                value, cursor = _string(text, cursor)
                if value is None:
                    break
                items.append(value)
            found[key.strip()] = items
            close = text.find("]", cursor)
            pos = (text.find("\n", close) + 1) if close >= 0 else len(text)
            if pos == 0:
                pos = len(text)
            continue
        pos = line_end + 1
    return found


def parse(data):
    """Our variables as a new Podman container gets them from this file: {name: value}."""
    found = {}
    for entry in arrays(data).get("env", []):
        name, eq, value = entry.partition("=")
        if eq and name in contract.MANAGED_VARS:
            found[name] = value
    return found


def problems(data, area_shared):
    """Why the drop-in would not give containers what it should; [] when fine."""
    found = []
    parsed = arrays(data)
    env = parsed.get("env", [])
    for default in PODMAN_DEFAULT_ENV:
        if default.split("=", 1)[0] not in [e.split("=", 1)[0] for e in env]:
            found.append("env lacks %s: containers would start without it" % default.split("=", 1)[0])
    variables = parse(data)
    if variables.get(contract.S3_PREFIX_VAR):
        found.append("sets %s: images' hooks would upload with container credentials" % contract.S3_PREFIX_VAR)
    if variables.get(contract.LOCAL_DIR_VAR) and volume(area_shared) not in parsed.get("volumes", []):
        found.append("enabled but does not mount %s" % area_shared)
    return found
