# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate the service names whose drop-ins core_dump writes."""

from __future__ import annotations

import re

# systemd's unit name alphabet (unit_name_is_valid): ASCII letters, digits,
# ":-_.\" and one '@' for templates/instances; at most 255 characters.
_NAME = re.compile(r"^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?\.service$")


def normalize(name):
    """``foo`` -> ``foo.service`` (as systemctl does); other names unchanged."""
    if "." not in name.rsplit("@", 1)[-1] and not name.endswith(".service"):
        return name + ".service"
    return name


def problems(name):
    """Messages for a unit name that cannot get an Environment= drop-in from us."""
    if not name:
        return ["units: an empty unit name is not valid"]
    if "/" in name or name in (".", ".."):
        return ["units: %r must be a unit name, not a path" % name]
    full = normalize(name)
    if not full.endswith(".service"):
        return ["units: %r is not a .service unit; only services run workloads with Environment= drop-ins" % name]
    if len(full) > 255:
        return ["units: %r is longer than systemd's 255-character limit" % name]
    if not _NAME.match(full):
        return [
            "units: %r is not a valid systemd unit name (letters, digits, ':', '-', '_', '.', '\\', one '@')" % name
        ]
    return []
