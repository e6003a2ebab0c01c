# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd drop-ins: the manager's ``DefaultEnvironment=`` and a unit's ``Environment=``.

Both settings are parsed by systemd's ``config_parse_environ``: the value is
split into words (quotes removed, C escapes decoded), then specifiers are
resolved. So a literal ``%`` must be written ``%%`` wherever specifiers are
resolved; values.py forbids quotes, backslashes and whitespace, so ``%`` is
the only character we escape.
"""

from __future__ import annotations

import re

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract

HEADER = (
    "# Managed by the neuron_ops.core_dump core_dump module; local changes are overwritten.\n"
    "# Neuron runtime core dumps: libnrt reads these once, when a workload starts.\n"
)

MANAGER_SECTION = "Manager"
MANAGER_KEY = "DefaultEnvironment"
UNIT_SECTION = "Service"
UNIT_KEY = "Environment"

# systemd resolves specifiers in DefaultEnvironment= only since v249
# (systemd PR #19737, "pid1: add specifier expansion for DefaultEnvironment=").
# Before that the value reached services verbatim, so "%%" would stay "%%".
# Debian 12 has 252, Debian 13 257, AL2023 252, Ubuntu 22.04 249. THE
# IN-CONTAINER TEST MUST CONFIRM that a service started after daemon-reexec
# sees a single '%'. To flip the rule, change this number (or the function).
MANAGER_SPECIFIERS_SINCE = 249


def manager_expands_specifiers(systemd_version):
    """Does this systemd resolve ``%`` specifiers in ``DefaultEnvironment=``?

    Unknown version (systemd not installed or not parsable): assume a current
    systemd, which does.
    """
    if systemd_version is None:
        return True
    return systemd_version >= MANAGER_SPECIFIERS_SINCE


def escape_unit_value(value):
    """Unit ``Environment=``: specifiers are always resolved, so ``%`` -> ``%%``."""
    return value.replace("%", "%%")


def escape_manager_value(value, expands_specifiers=True):
    """Manager ``DefaultEnvironment=``: ``%%`` only where this systemd resolves specifiers."""
    return value.replace("%", "%%") if expands_specifiers else value


def unescape_specifiers(value):
    """``%%`` -> ``%``; any other specifier is left as written (we never write one)."""
    return re.sub(r"%%", "%", value)


def _render(section, key, values, escape):
    if values is None:
        return None
    lines = [HEADER, "[%s]\n" % section]
    for name in contract.MANAGED_VARS:
        if name in values:
            # One assignment per line: each adds to (never resets) the list.
            lines.append('%s="%s=%s"\n' % (key, name, escape(values[name])))
    return "".join(lines).encode("utf-8")


def render_manager(values, expands_specifiers=True):
    return _render(MANAGER_SECTION, MANAGER_KEY, values, lambda v: escape_manager_value(v, expands_specifiers))


def render_unit(values):
    return _render(UNIT_SECTION, UNIT_KEY, values, escape_unit_value)


def split_words(rvalue):
    """systemd's extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE), simplified.

    Handles whitespace separation, single and double quotes and backslash
    escapes of the common forms; enough to read back what we and humans write.
    """
    words = []
    word = []
    in_word = False
    quote = None
    pos = 0
    simple = {
        "n": "\n",
        "t": "\t",
        "r": "\r",
        "\\": "\\",
        '"': '"',
        "'": "'",
        " ": " ",
        "a": "\a",
        "b": "\b",
        "f": "\f",
        "v": "\v",
        "s": " ",
    }
    while pos < len(rvalue):
        ch = rvalue[pos]
        if ch == "\\" and pos + 1 < len(rvalue):
            nxt = rvalue[pos + 1]
            word.append(simple.get(nxt, "\\" + nxt))
            in_word = True
            pos += 2
            continue
        if quote:
            if ch == quote:
                quote = None
            else:
                word.append(ch)
        elif ch in "\"'":
            quote = ch
            in_word = True
        elif ch.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        else:
            word.append(ch)
            in_word = True
        pos += 1
    if in_word:
        words.append("".join(word))
    return words


def _assignments(data, section, key):
    """Every word assigned by ``key=`` lines in ``[section]`` (continuations joined)."""
    current = None
    words = []
    text = (data or b"").decode("utf-8", "surrogateescape")
    logical = []
    pending = ""
    for line in text.splitlines():
        if pending:
            line = pending + line
            pending = ""
        if line.endswith("\\") and not line.lstrip().startswith(("#", ";")):
            pending = line[:-1] + " "
            continue
        logical.append(line)
    if pending:
        logical.append(pending)
    for line in logical:
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            current = stripped[1:-1]
            continue
        name, eq, rvalue = stripped.partition("=")
        if current != section or not eq or name.strip() != key:
            continue
        if not rvalue.strip():
            # An empty assignment resets the list.
            words = []
            continue
        words.extend(split_words(rvalue.strip()))
    return words


def _parse(data, section, key, unescape):
    found = {}
    for word in _assignments(data, section, key):
        name, eq, value = word.partition("=")
        if eq and name in contract.MANAGED_VARS:
            found[name] = unescape(value)
    return found


def parse_manager(data, expands_specifiers=True):
    """Our variables as the manager would set them from a system.conf drop-in: {name: value}."""
    return _parse(data, MANAGER_SECTION, MANAGER_KEY, unescape_specifiers if expands_specifiers else (lambda v: v))


def parse_unit(data):
    """Our variables as a unit drop-in sets them: {name: value}."""
    return _parse(data, UNIT_SECTION, UNIT_KEY, unescape_specifiers)


def parse_version(text):
    """systemd version number from ``systemctl --version`` output ("systemd 252 (252.30-1~deb12u2)")."""
    match = re.match(r"\s*systemd\s+(\d+)", text or "")
    return int(match.group(1)) if match else None
