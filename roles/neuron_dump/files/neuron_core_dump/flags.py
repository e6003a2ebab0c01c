"""Parse the runtime's ``neuron-dump`` argv by flag name.

The runtime passes ``--name value`` pairs. ``--s3-output-prefix`` is present only
when a prefix is set, which shifts every later position, and different runtime
versions pass different sets, so nothing here depends on order. Accepted shapes:

- ``--name value`` and ``--name=value``;
- ``--name`` followed by another ``--flag`` or by nothing: an empty value;
- repeated flags: every value is kept, the last one wins in :meth:`Flags.get`;
- anything else (stray words, ``-x``, ``--``) is kept in ``positional``.

Parsing never raises.
"""

KNOWN_FLAGS = (
    "neff-name",
    "neff-uuid",
    "date-time",
    "pid",
    "tid",
    "log-id",
    "instance-id",
    "cluster-id",
    "error-location",
    "error-code",
    "local-output-dir",
    "s3-output-prefix",
    "device-id",
    "core-id",
    "runtime-generated",
)


class Flags:
    __slots__ = ("order", "positional", "values")

    def __init__(self):
        self.values = {}  # name -> list of values, in argv order
        self.positional = []
        self.order = []  # flag names in first-seen order

    def add(self, name, value):
        if name not in self.values:
            self.values[name] = []
            self.order.append(name)
        self.values[name].append(value)

    def get(self, name, default=None):
        """The last non-empty value of ``name`` (a repeated flag's last word wins)."""
        for value in reversed(self.values.get(name, ())):
            if value:
                return value
        return default

    def has(self, name):
        return name in self.values

    def is_runtime_generated(self):
        return self.get("runtime-generated") is not None

    def as_record(self, max_chars):
        """Flags as a JSON-friendly dict: a string per flag, a list when repeated."""
        result = {}
        for name in self.order:
            values = [_clip(v, max_chars) for v in self.values[name]]
            result[_clip(name, max_chars)] = values[0] if len(values) == 1 else values
        return result


def _clip(text, max_chars):
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + "...(%d chars truncated)" % (len(text) - max_chars)


def parse(argv):
    """Parse ``argv`` (without the program name) into :class:`Flags`."""
    flags = Flags()
    index = 0
    count = len(argv)
    while index < count:
        token = argv[index]
        index += 1
        if not isinstance(token, str):
            token = str(token)
        if len(token) > 2 and token.startswith("--"):
            body = token[2:]
            if "=" in body:
                name, _unused, value = body.partition("=")
                if name:
                    flags.add(name, value)
                else:
                    flags.positional.append(token)
                continue
            if index < count and not looks_like_flag(argv[index]):
                flags.add(body, str(argv[index]))
                index += 1
            else:
                flags.add(body, "")
        else:
            flags.positional.append(token)
    return flags


def looks_like_flag(token):
    return isinstance(token, str) and len(token) > 2 and token.startswith("--")
