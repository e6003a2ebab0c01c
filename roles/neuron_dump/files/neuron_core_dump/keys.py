"""File names as S3 keys and as text: one encoding, used by the uploader, the manifest and every report.

A dump dir may hold any name the kernel allows: bytes that are not UTF-8, control
characters, names so long that prefix + name pass S3's 1,024-byte key limit. All of
them are uploaded; none may break a JSON report.

Key segment (:func:`object_key`)
    The name's bytes (``os.fsencode``: the original bytes, also for names Python
    decoded with ``surrogateescape``) with every byte outside ``SAFE`` written as
    ``%XX`` (upper-case hex). ``%`` itself is outside ``SAFE``, so the encoding is
    deterministic and collision-free, and plain names (``i-...-nd0-nc0-pid-7.json``)
    keep their exact key.

    ``%~`` never occurs in an encoded name (a ``%`` is always followed by two hex
    digits), so everything after it is ours:

    ``%~n<32 hex>``  the key would exceed ``MAX_KEY_BYTES``: the encoded name is cut
                     (never inside a ``%XX``) and the first 128 bits of the SHA-256 of
                     the name's bytes appended;
    ``%~c<16 hex>``  a collision: the key already held other bytes (another dump's);
                     ours goes here, suffixed with the first 64 bits of our content's
                     SHA-256 (see :mod:`uploader`).

Text (:func:`display`, :func:`clean`)
    Valid UTF-8 with no control characters is shown as is; otherwise undecodable
    bytes become ``\\xNN`` and control characters ``\\xNN`` as well. The result is
    always valid UTF-8 without surrogates, so JSON consumers that are strict about
    that (Ansible) accept it. It is for humans and reports; the manifest keeps the
    exact bytes too (``name_b64``) whenever the display differs from them.
"""

import os

# base64 and hashlib are imported where used: ``status`` imports this module for clean()
# and answers in a few tens of milliseconds, OpenSSL's start-up included otherwise

SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~+=,@")
MAX_KEY_BYTES = 1024
MARKER = "%~"
TRUNCATED_HASH_CHARS = 32
COLLISION_HASH_CHARS = 16
# room a key prefix must leave for a name: a cut name keeps at least a few characters
MIN_NAME_ROOM = 64


class KeyTooLong(ValueError):
    """The key prefix alone leaves no room for a file name within S3's key limit."""


def name_bytes(name):
    """The original bytes of a name from ``os.listdir`` (str with surrogates, or bytes)."""
    return name if isinstance(name, bytes) else os.fsencode(name)


def encode_segment(raw):
    return "".join(chr(b) if b in SAFE else "%%%02X" % b for b in raw)


def _cut(encoded, room):
    """``encoded`` cut to at most ``room`` characters, never inside a ``%XX`` triplet."""
    cut = encoded[:room]
    tail = cut.rfind("%")
    if tail != -1 and tail > len(cut) - 3:
        cut = cut[:tail]
    return cut


def object_key(key_prefix, name, suffix=""):
    """The S3 key of ``name`` below ``key_prefix`` (optionally with an ours-only ``suffix``)."""
    raw = name_bytes(name)
    head = key_prefix + "/" if key_prefix else ""
    encoded = encode_segment(raw)
    key = head + encoded + suffix
    if len(key.encode("ascii")) <= MAX_KEY_BYTES:
        return key
    import hashlib

    tail = MARKER + "n" + hashlib.sha256(raw).hexdigest()[:TRUNCATED_HASH_CHARS] + suffix
    room = MAX_KEY_BYTES - len(head) - len(tail)
    if room < MIN_NAME_ROOM:
        raise KeyTooLong("key prefix of %d bytes leaves no room for file names" % len(head))
    return head + _cut(encoded, room) + tail


def collision_suffix(sha256_hex):
    return MARKER + "c" + sha256_hex[:COLLISION_HASH_CHARS]


def check_prefix_room(key_prefix):
    """Raise KeyTooLong when ``key_prefix`` cannot hold any file name."""
    if len(key_prefix.encode("utf-8")) + 1 + MIN_NAME_ROOM + 40 > MAX_KEY_BYTES:
        raise KeyTooLong("key prefix of %d bytes leaves no room for file names" % len(key_prefix))


def display(name):
    """A report-safe rendering of a name or path (str with surrogates, or bytes)."""
    text = name_bytes(name).decode("utf-8", "backslashreplace")
    if all(" " <= c != "\x7f" for c in text):
        return text
    return "".join(c if " " <= c != "\x7f" else "\\x%02x" % ord(c) for c in text)


def clean_text(text):
    """``text`` with undecodable bytes (surrogates) as ``\\xNN``; everything else unchanged."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # surrogates from undecodable bytes: strict JSON readers refuse them
        return (
            text.encode("utf-8", "surrogateescape")
            .decode("utf-8", "backslashreplace")
            .encode("utf-8", "backslashreplace")
            .decode("utf-8")
        )


def clean(value):
    """``value`` with every string made report-safe (recursively through lists and dicts).

    Control characters stay: every JSON encoder escapes them.
    """
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k) if isinstance(k, str) else k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def describe(name):
    """Manifest fields naming a file: ``name`` (display) plus ``name_b64`` when it is not exact."""
    raw = name_bytes(name)
    shown = display(raw)
    fields = {"name": shown}
    if shown.encode("utf-8") != raw:
        import base64

        fields["name_b64"] = base64.b64encode(raw).decode("ascii")
    return fields
