"""The runtime's dump directory name ``dt-%d-cid-%c`` read back into its two values.

``%d`` comes in the two forms the runtime is documented with (``YYYYmmdd-HHMMSS``, and
the flag text's ``yyyy-mm-dd-HH-MM``); ``%c`` as 16 hex digits (``%016lx``), ``0`` (the
infodump) or ``none`` (no collectives). Anything else is not a runtime dump directory.
"""

import re

_NAME = re.compile(
    r"dt-(?P<d>[0-9]{8}-[0-9]{6}|[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2})-cid-(?P<c>[0-9a-f]{16}|0|none)"
)


def parse(name):
    """{"d": ..., "c": ...} of a ``dt-<D>-cid-<C>`` name, else None (str or bytes)."""
    if isinstance(name, bytes):
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError:
            return None
    found = _NAME.fullmatch(name)
    return {"d": found.group("d"), "c": found.group("c")} if found else None
