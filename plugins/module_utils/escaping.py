# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make any name printable, so no file name can break a report.

A Linux file name is any bytes but ``/`` and NUL. Decoded with surrogateescape (as
Python does for os.listdir), or read back from JSON that carried such a name, it
holds lone surrogates, which Ansible refuses to deserialize: one odd file would
drop a host from the fleet report. Control characters would corrupt the text
reports. The rule, applied only to a string that holds such a character:

- a byte that is not UTF-8 (surrogate U+DC80..U+DCFF) becomes ``\\xNN`` (the byte);
- any other lone surrogate becomes ``\\uNNNN``;
- a control character (C0, DEL, C1) becomes ``\\xNN``, except tab and newline: JSON
  carries them as ``\\t`` and ``\\n`` anyway, and the Markdown report shows them as spaces;
- a backslash becomes ``\\\\``, so an escaped string reads back unambiguously.

Strings without such characters are returned unchanged.
"""

from __future__ import annotations

import re

# Everything the rule rewrites. A backslash alone does not make a string need escaping.
_NEEDS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_ESCAPED = re.compile("[\\\\\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _one(match):
    code = ord(match.group(0))
    if code == 0x5C:
        return "\\\\"
    if 0xDC80 <= code <= 0xDCFF:
        return "\\x%02x" % (code - 0xDC00)
    if 0xD800 <= code <= 0xDFFF:
        return "\\u%04x" % code
    return "\\x%02x" % code


def needs_escaping(text):
    return bool(_NEEDS.search(text))


def name(value):
    """``value`` (str or bytes) as printable text, by the rule above."""
    text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
    return _ESCAPED.sub(_one, text) if needs_escaping(text) else text


def printable(data):
    """``data`` (dicts, lists, strings, scalars) with every string and key made printable."""
    if isinstance(data, str):
        return name(data)
    if isinstance(data, bytes):
        return name(data)
    if isinstance(data, dict):
        return {printable(key): printable(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [printable(item) for item in data]
    return data
