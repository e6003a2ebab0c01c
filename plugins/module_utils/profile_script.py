# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``/etc/profile.d/neuron-core-dump.sh``: a whole file we own, read by login shells.

/etc/profile sources every ``/etc/profile.d/*.sh`` in login shells (sh, dash,
bash, zsh in sh mode). Plain ``export NAME='value'`` lines work in all of them.
"""

from __future__ import annotations

import re

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract

HEADER = (
    "# Managed by the neuron_ops.core_dump core_dump module; local changes are overwritten.\n"
    "# Neuron runtime core dumps: libnrt reads these once, when a workload starts.\n"
)

_EXPORT = re.compile(r"^export ([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def escape_value(value):
    """POSIX single quoting: everything literal; a ``'`` becomes ``'\\''``.

    values.py already forbids quotes, so in practice this is ``'value'``; the
    general form is kept so the function is correct on its own.
    """
    return "'" + value.replace("'", "'\\''") + "'"


def _unescape(text):
    """Inverse of escape_value for the strings it produces; None when not in that form."""
    out = []
    pos = 0
    while pos < len(text):
        if text[pos] == "'":
            end = text.find("'", pos + 1)
            if end < 0:
                return None
            out.append(text[pos + 1 : end])
            pos = end + 1
        elif text.startswith("\\'", pos):
            out.append("'")
            pos += 2
        else:
            return None
    return "".join(out)


def render(values):
    """File content for ``values`` ({name: value}); None means no file."""
    if values is None:
        return None
    lines = [HEADER]
    for name in contract.MANAGED_VARS:
        if name in values:
            lines.append("export %s=%s\n" % (name, escape_value(values[name])))
    return "".join(lines).encode("utf-8")


def parse(data):
    """Our variables from a file in the format ``render`` writes: {name: value}.

    Lines in any other form are ignored; the module rewrites the whole file
    anyway, and core_dump_info reads login shells by running one.
    """
    found = {}
    for line in (data or b"").decode("utf-8", "surrogateescape").splitlines():
        match = _EXPORT.match(line.strip())
        if not match or match.group(1) not in contract.MANAGED_VARS:
            continue
        value = _unescape(match.group(2))
        if value is not None:
            found[match.group(1)] = value
    return found
