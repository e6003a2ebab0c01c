"""Any name becomes printable text: undecodable bytes, control characters, very long names."""

from __future__ import annotations

import json

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import escaping

BAD = b"bad-\xff\xfe.bin"
# What os.listdir(str) returns for it, and what json.loads makes of the host program's "\udcff".
BAD_TEXT = BAD.decode("utf-8", "surrogateescape")


def test_undecodable_bytes_become_hex_escapes():
    assert escaping.name(BAD) == "bad-\\xff\\xfe.bin"
    assert escaping.name(BAD_TEXT) == "bad-\\xff\\xfe.bin"
    assert escaping.name(json.loads(json.dumps(BAD_TEXT))) == "bad-\\xff\\xfe.bin"


def test_control_characters_and_backslashes():
    assert escaping.name("ctl-\x1b[31m\r\x7f\x85.bin") == "ctl-\\x1b[31m\\x0d\\x7f\\x85.bin"
    # Tab and newline are kept (JSON escapes them; the Markdown report turns them into spaces).
    assert escaping.name("a\tb\nc") == "a\tb\nc"
    assert escaping.name("a\tb\n\x1b") == "a\tb\n\\x1b"
    # In a string that needed escaping, a backslash is doubled so the result reads back unambiguously.
    assert escaping.name("a\\xff\r") == "a\\\\xff\\x0d"
    assert escaping.name("\ud800x") == "\\ud800x"  # a lone surrogate that is not an escaped byte


def test_clean_names_are_unchanged():
    for clean in ("core", "i-0abc-nd0-nc0-pid-1.bin", "dt-%d-cid-%c", "é文字.bin", "back\\slash", ""):
        assert escaping.name(clean) == clean
        assert escaping.name(clean.encode()) == clean


def test_a_very_long_name_is_kept_whole():
    long_name = ("x" * 200).encode() + b"\xff" * 55  # 255 bytes, NAME_MAX
    escaped = escaping.name(long_name)
    assert escaped == "x" * 200 + "\\xff" * 55 and len(escaped) == 200 + 4 * 55


def test_printable_walks_every_string_and_key_and_is_idempotent():
    data = {
        "host": "h1",
        BAD_TEXT: [BAD_TEXT, {"detail": "line\x1bbreak", "n": 3, "ok": True, "none": None}],
        "tuple": ("\x00",),
    }
    once = escaping.printable(data)
    assert once == {
        "host": "h1",
        "bad-\\xff\\xfe.bin": ["bad-\\xff\\xfe.bin", {"detail": "line\\x1bbreak", "n": 3, "ok": True, "none": None}],
        "tuple": ["\\x00"],
    }
    assert escaping.printable(once) == once
    json.dumps(once).encode("utf-8")  # strict UTF-8: no surrogates left
    assert not any(escaping.needs_escaping(s) for s in json.dumps(once, ensure_ascii=False))
