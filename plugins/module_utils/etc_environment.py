# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``/etc/environment``: read it like pam_env does, edit only our two keys.

Decision: we own the two keys, not just "our lines". pam_env applies lines in
order and a later assignment wins, so a stray ``NEURON_RT_..._CORE_DUMP_...=``
line elsewhere would silently override ours. Every logical line that assigns
(or unsets) one of the two keys is removed, and our block -- a marker comment
line, then one line per key -- is written in its place. pam_env has no trailing
comments (it ends the value at ``#``, leaving trailing blanks in it), so the
marker is a line of its own.

Everything else is kept byte for byte: comments, other keys, CRLF endings,
odd quoting, a last line without a newline. Our block goes where our marker
was, else at the top of the file: appending at the end would have to touch a
last line without a newline, and a foreign line ending in a backslash would
swallow the line after it (pam_env joins continuation lines, skipping comment
lines in between), which cannot happen at the top.
"""

from __future__ import annotations

import re

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract

MARKER = b"# neuron_ops.core_dump: the NEURON_RT_*_CORE_DUMP_* lines below are managed by the core_dump module"

_KEY_CHARS = re.compile(rb"^[A-Za-z0-9_]+$")


def escape_value(value):
    """How a value is written: double quotes, nothing escaped.

    pam_env strips the surrounding quotes (and would drop inner quotes, which
    values.py forbids); systemd's environment.d reader unquotes the same way.
    ``KEY=""`` is how an empty value reads best and what the Neuron docs show.
    """
    return '"%s"' % value


def _physical_lines(data):
    """Split on LF only (pam_env reads with fgets); each line keeps its LF."""
    lines = data.split(b"\n")
    out = [line + b"\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _logical_lines(lines):
    """Group physical lines into pam_env logical lines.

    Returns a list of (first_index, last_index, text) where text is what
    pam_env's ``_assemble_line`` hands to the parser (comment and blank lines
    inside a continuation are skipped, as pam_env does).
    """
    out = []
    buf = b""
    start = None
    for index, raw in enumerate(lines):
        line = raw[:-1] if raw.endswith(b"\n") else raw
        stripped = line.lstrip(b" \t")
        if not stripped or stripped.startswith(b"#"):
            continue
        if start is None:
            start = index
        hash_at = stripped.find(b"#")
        if hash_at >= 0:
            # pam_env ends the logical line at '#': no continuation check.
            out.append((start, index, buf + stripped[:hash_at]))
            buf, start = b"", None
            continue
        trimmed = stripped.rstrip(b" \t")
        if trimmed.endswith(b"\\"):
            buf += trimmed[:-1]
            continue
        out.append((start, index, buf + stripped))
        buf, start = b"", None
    if start is not None:
        out.append((start, len(lines) - 1, buf))
    return out


def _assignment(text):
    """(key, value or None for an unset request) the way pam_env parses a logical line, or None to skip."""
    text = text.lstrip(b" \t")
    if text.startswith(b"export "):
        text = text[7:]
    key, eq, value = text.partition(b"=")
    if not key or not _KEY_CHARS.match(key):
        return None
    if not eq:
        return key, None
    if value[:1] in (b'"', b"'"):
        # pam_env: drop every quote character except one that is not last.
        body = value[1:]
        kept = bytearray()
        for pos, byte in enumerate(body):
            if byte in (0x22, 0x27) and pos == len(body) - 1:
                continue
            kept.append(byte)
        value = bytes(kept)
    return key, value


def parse(data):
    """The environment pam_env would build from ``data``: {name: value} (str, surrogateescape)."""
    env = {}
    for _first, _last, text in _logical_lines(_physical_lines(data or b"")):
        parsed = _assignment(text)
        if parsed is None:
            continue
        key, value = parsed
        name = key.decode("ascii")
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value.decode("utf-8", "surrogateescape")
    return env


def managed_values(data):
    """Our two variables as pam_env sees them: {name: value}; a name is missing when unset."""
    env = parse(data)
    return {name: env[name] for name in contract.MANAGED_VARS if name in env}


def has_marker(data):
    return any(line.rstrip(b"\r\n") == MARKER for line in _physical_lines(data or b""))


def render_block(values):
    lines = [MARKER + b"\n"]
    for name in contract.MANAGED_VARS:
        if name in values:
            lines.append(("%s=%s\n" % (name, escape_value(values[name]))).encode("utf-8"))
    return b"".join(lines)


def render(existing, values):
    """New file content: ``existing`` with our keys set to ``values`` (None: removed).

    ``existing`` is None when the file does not exist. Returns None when the
    file should stay absent.
    """
    lines = _physical_lines(existing or b"")
    managed_names = {name.encode("ascii") for name in contract.MANAGED_VARS}
    drop = set()
    for first, last, text in _logical_lines(lines):
        parsed = _assignment(text)
        if parsed is not None and parsed[0] in managed_names:
            drop.update(range(first, last + 1))
    continuing = _continuation_before(lines)
    insert_at = None
    for index, raw in enumerate(lines):
        if raw.rstrip(b"\r\n") == MARKER:
            drop.add(index)
            if insert_at is None and not continuing[index]:
                insert_at = index
    if insert_at is None:
        insert_at = 0
    kept = []
    for index, raw in enumerate(lines):
        if index == insert_at and values is not None:
            kept.append(render_block(values))
        if index not in drop:
            kept.append(raw)
    if values is not None and insert_at >= len(lines):
        kept.append(render_block(values))
    if existing is None and values is None:
        return None
    return b"".join(kept)


def _continuation_before(lines):
    """For each physical line: would pam_env join it onto the previous logical line?"""
    flags = []
    continuing = False
    for raw in lines:
        flags.append(continuing)
        line = raw[:-1] if raw.endswith(b"\n") else raw
        stripped = line.lstrip(b" \t")
        if not stripped or stripped.startswith(b"#"):
            continue
        # pam_env ends a logical line at '#' without looking for a continuation.
        continuing = b"#" not in stripped and stripped.rstrip(b" \t").endswith(b"\\")
    return flags
