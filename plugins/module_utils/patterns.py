# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runtime's ``%`` variables: parse, validate and expand like libnrt does.

libnrt expands ``%d %c %p %t %l %i`` in both the local directory and the S3
prefix. Any other ``%X`` becomes a literal ``%`` and X is consumed, so
``%%`` yields ``%`` and ``%x`` silently loses the ``x``. We reject those
instead of letting a typo change where dumps land.

One implementation for the modules and the host program: the neuron_dump role installs this
very file into the host package (``__neuron_dump_shared_files``), so it imports nothing.
"""

from __future__ import annotations

VARIABLES = {
    "d": "datetime (YYYYmmdd-HHMMSS; the same on every rank of a collectives run)",
    "c": "cluster id (the same on every rank of a collectives run)",
    "p": "process id",
    "t": "thread id",
    "l": "log id (unique within one process)",
    "i": "EC2 instance id",
}

# Longest value each variable can take; used to bound expanded lengths.
# %l is a 64-bit counter, %c a 16-hex-digit id or "none", %i "i-" + 17 hex.
MAX_EXPANSION = {"d": 15, "c": 16, "p": 10, "t": 10, "l": 20, "i": 19}

# Example values, used to show what a pattern turns into.
EXAMPLE_VALUES = {
    "d": "20250917-194443",
    "c": "0000000000000000",
    "p": "897",
    "t": "897",
    "l": "0",
    "i": "i-0b514eadc4fec7de6",
}

REQUIRED_FOR_UNIQUENESS = ("d", "c")


class PatternProblem:
    """One rule a pattern breaks, with a message that says what the runtime would do."""

    def __init__(self, rule, message):
        self.rule = rule
        self.message = message

    def __repr__(self):
        return "PatternProblem(%r, %r)" % (self.rule, self.message)


def tokens(pattern):
    """Split a pattern into ('text', str) and ('var', letter) tokens.

    An unknown ``%X`` is returned as ('unknown', X); a lone trailing ``%`` as
    ('trailing', '').
    """
    out = []
    text = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch != "%":
            text.append(ch)
            i += 1
            continue
        if text:
            out.append(("text", "".join(text)))
            text = []
        if i + 1 >= len(pattern):
            out.append(("trailing", ""))
            i += 1
            continue
        letter = pattern[i + 1]
        out.append(("var" if letter in VARIABLES else "unknown", letter))
        i += 2
    if text:
        out.append(("text", "".join(text)))
    return out


def variables_used(pattern):
    """The known variable letters a pattern uses, in order of first use."""
    seen = []
    for kind, value in tokens(pattern):
        if kind == "var" and value not in seen:
            seen.append(value)
    return seen


def problems(pattern, require_unique=True):
    """Every ``%`` rule the pattern breaks (empty list when it is fine)."""
    found = []
    for kind, value in tokens(pattern):
        if kind == "unknown":
            found.append(
                PatternProblem(
                    "unknown-variable",
                    "'%%%s' is not a runtime variable (known: %s); the runtime would write a literal '%%' and drop "
                    "the '%s'" % (value, " ".join("%" + k for k in VARIABLES), value),
                )
            )
        elif kind == "trailing":
            found.append(
                PatternProblem(
                    "trailing-percent",
                    "a lone '%' at the end is not a runtime variable; the runtime would write it literally",
                )
            )
    if require_unique:
        used = variables_used(pattern)
        missing = [v for v in REQUIRED_FOR_UNIQUENESS if v not in used]
        if missing:
            found.append(
                PatternProblem(
                    "missing-unique-variables",
                    "must contain %s so every rank of a failing run writes one shared, unique directory "
                    "(set allow_non_unique=true to accept dumps overwriting or mixing)"
                    % " and ".join("%" + v for v in missing),
                )
            )
    return found


def at_least_as_unique(local_dir, s3_key):
    """The ``%`` rule between the two patterns: every variable of ``local_dir`` must appear in
    the S3 key, or a PatternProblem naming the missing ones (None when the rule holds).

    Dumps of different local dirs would otherwise share one S3 prefix: equal file names and
    the per-dump manifests there would overwrite each other. The reverse (a variable only in
    the S3 key, such as ``%p``) is allowed: see the core_dump documentation of ``s3_prefix``.
    """
    key_variables = variables_used(s3_key)
    missing = [v for v in variables_used(local_dir) if v not in key_variables]
    if not missing:
        return None
    return PatternProblem(
        "s3-prefix-less-unique-than-local-dir",
        "must use every variable of local_dir (rule: the S3 prefix is at least as unique as the local dir); "
        "missing %s: dumps from different local dirs would share one S3 prefix, where equal file names and their "
        "manifests overwrite each other" % " ".join("%" + v for v in missing),
    )


def expand(pattern, values):
    """Expand like libnrt: known variables from ``values``, unknown ``%X`` -> ``%``."""
    out = []
    for kind, value in tokens(pattern):
        if kind == "text":
            out.append(value)
        elif kind == "var":
            out.append(str(values.get(value, "")))
        else:
            # Unknown %X and a trailing %: the runtime keeps the '%', drops X.
            out.append("%")
    return "".join(out)


def max_expanded_length(pattern):
    """Upper bound of the expanded length in bytes (UTF-8)."""
    total = 0
    for kind, value in tokens(pattern):
        if kind == "text":
            total += len(value.encode("utf-8"))
        elif kind == "var":
            total += MAX_EXPANSION[value]
        else:
            total += 1
    return total


def literal_prefix(pattern):
    """The part before the first ``%``: fixed whatever the variables expand to."""
    index = pattern.find("%")
    return pattern if index < 0 else pattern[:index]


def storage_root(pattern):
    """(directory, entry-name prefix) that every expansion of ``pattern`` lives under.

    ``/var/lib/x/dumps/dt-%d-cid-%c`` -> (``/var/lib/x/dumps``, ``dt-``): dumps
    are the entries of that directory whose name starts with ``dt-``.
    """
    prefix = literal_prefix(pattern)
    if "/" not in prefix:
        return None, prefix
    directory, _sep, name_prefix = prefix.rpartition("/")
    return directory or "/", name_prefix
