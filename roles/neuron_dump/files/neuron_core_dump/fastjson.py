"""Cheap JSON for the hook's hot path.

Importing :mod:`json` pulls in :mod:`re` and :mod:`enum` (about 10 ms at start-up on
a cold interpreter), which is a large share of the hook's budget. The C accelerator
``_json`` alone is enough for what the hook needs: its scanner parses the config and
``encode_basestring_ascii`` escapes strings. Anything unusual (a parse error, a
missing accelerator) falls back to the real :mod:`json` module, so the results and
error messages are exactly the standard ones.
"""

import math

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it; other interpreters fall back
    _json = None


def _reject_constant(name):
    raise ValueError("JSON constant %s is not allowed" % name)


class _ScannerContext:
    """The attributes ``_json.make_scanner`` reads from ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_reject_constant)
    memo = None


_cache = {}  # the C scanner, made on first use


def loads(text):
    """Parse a JSON document (str). Raises ValueError on invalid input."""
    if _json is not None:
        try:
            scanner = _cache.get("scanner")
            if scanner is None:
                scanner = _cache["scanner"] = _json.make_scanner(_ScannerContext())
            start = len(text) - len(text.lstrip(" \t\r\n"))
            value, end = scanner(text, start)
            if not text[end:].strip(" \t\r\n"):
                return value
        except Exception:  # any failure of the fast path: let the json module decide and explain
            pass
    import json  # slow import, only on the unusual path

    return json.loads(text, parse_constant=_reject_constant)


if _json is not None:
    _quote = _json.encode_basestring_ascii
else:  # pragma: no cover

    def _quote(value):
        import json

        return json.dumps(value)


def dumps(value, indent=None):
    """Serialise dicts, lists, tuples, str, int, float, bool and None (ASCII output).

    With ``indent`` the output is pretty-printed like ``json.dumps(indent=...)``.
    Other types are converted with ``str()`` so a record can always be written.
    """
    parts = []
    _encode(value, parts, indent, 0)
    return "".join(parts)


def _encode(value, parts, indent, level):
    if isinstance(value, str):
        parts.append(_quote(value))
    elif value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int):
        parts.append(int.__repr__(value))
    elif isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            parts.append("null")  # JSON has no NaN/Infinity
        else:
            parts.append(float.__repr__(value))
    elif isinstance(value, dict):
        if not value:
            parts.append("{}")
            return
        parts.append("{")
        first = True
        for key, item in value.items():
            if not first:
                parts.append(",")
                if indent is None:
                    parts.append(" ")
            first = False
            if indent is not None:
                parts.append("\n" + " " * (indent * (level + 1)))
            parts.append(_quote(key if isinstance(key, str) else str(key)))
            parts.append(": ")
            _encode(item, parts, indent, level + 1)
        if indent is not None:
            parts.append("\n" + " " * (indent * level))
        parts.append("}")
    elif isinstance(value, (list, tuple)):
        if not value:
            parts.append("[]")
            return
        parts.append("[")
        first = True
        for item in value:
            if not first:
                parts.append(",")
                if indent is None:
                    parts.append(" ")
            first = False
            if indent is not None:
                parts.append("\n" + " " * (indent * (level + 1)))
            _encode(item, parts, indent, level + 1)
        if indent is not None:
            parts.append("\n" + " " * (indent * level))
        parts.append("]")
    else:
        parts.append(_quote(str(value)))
