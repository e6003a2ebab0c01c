"""The runtime's dump directory name ``dt-%d-cid-%c`` read back into its two values.

``%d`` comes in the two forms the runtime is documented with (``YYYYmmdd-HHMMSS``, and
the flag text's ``yyyy-mm-dd-HH-MM``); ``%c`` as 16 hex digits (``%016lx``), ``0`` (the
infodump) or ``none`` (no collectives). Anything else is not a runtime dump directory.

Parsed by hand, without ``re``: ``status`` reaches this module (through :mod:`adopt`) and
``import re`` is about a quarter of its start-up.
"""

_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdef")
# the two forms of %d as their digit-group lengths, joined by "-"
_DATE_FORMS = ((8, 6), (4, 2, 2, 2, 2))


def _is_date(text):
    groups = text.split("-")
    return tuple(len(g) for g in groups) in _DATE_FORMS and all(set(g) <= _DIGITS for g in groups)


def _is_cid(text):
    return text in ("0", "none") or (len(text) == 16 and set(text) <= _HEX)


def parse(name):
    """{"d": ..., "c": ...} of a ``dt-<D>-cid-<C>`` name, else None (str or bytes)."""
    if isinstance(name, bytes):
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not name.startswith("dt-"):
        return None
    date, sep, cid = name[3:].partition("-cid-")
    if not sep or not _is_date(date) or not _is_cid(cid):
        return None
    return {"d": date, "c": cid}
