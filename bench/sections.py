"""Sections of ``docs/benchmarks.md`` that other harnesses than ``bench/run.py`` write.

Each lives between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``. A harness replaces its
own section and leaves the rest; ``bench/run.py``, which writes the whole file, carries the
sections over so that a run of it does not erase numbers it did not measure.
"""

import os

DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md")
NAMES = ("fleet-bench", "install-bench", "job-fetch-bench")  # in the order they stand in the file


def markers(name):
    return "<!-- %s:begin -->" % name, "<!-- %s:end -->" % name


def wrap(name, text):
    begin, end = markers(name)
    return "%s\n%s\n%s\n" % (begin, text.strip("\n"), end)


def _read(output):
    if output == "-" or not os.path.exists(output):
        return ""
    with open(output, encoding="utf-8") as handle:
        return handle.read()


def _section(current, name):
    begin, end = markers(name)
    if begin in current and end in current:
        return begin + current.split(begin, 1)[1].split(end, 1)[0] + end + "\n"
    return None


def write_section(name, text, output, progress=None):
    """Put ``text`` (already wrapped) in place of section ``name`` of ``output`` ('-': stdout)."""
    if output == "-":
        print(text, end="")
        return
    current = _read(output)
    old = _section(current, name)
    new = current.replace(old, text) if old else current.rstrip("\n") + "\n\n" + text
    with open(output + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(new)
    os.replace(output + ".tmp", output)
    if progress:
        progress("wrote the %s section of %s" % (name, output))


def keep_sections(text, output):
    """``text`` (bench/run.py's report) with every named section of ``output`` appended."""
    current = _read(output)
    kept = [section for section in (_section(current, name) for name in NAMES) if section]
    return "\n".join([text.rstrip("\n") + "\n", *kept])
