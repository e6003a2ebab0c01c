# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which characters a setting may contain so every target carries it unchanged.

We reject rather than escape. Each target reads values differently:

- ``/etc/environment`` (pam_env): ends a value at ``#``, strips every quote
  character inside a quoted value, joins a line ending in a backslash with the
  next one, keeps CR as part of the value; systemd's environment.d generator
  (which reads the same file on some distros) expands ``$VAR``.
- ``/etc/profile.d/*.sh``: a shell; we single-quote, which is safe for all but
  ``'`` -- still, ``$`` and backticks invite someone to "fix" the quoting.
- systemd ``Environment=`` / ``DefaultEnvironment=``: C-unescapes backslashes,
  removes quotes, splits words on whitespace, expands ``%`` specifiers (``%``
  is the one character we do escape, as ``%%``, in the systemd writers).

Allowing only printable ASCII without those characters means one rendering is
correct everywhere, and the tests prove it by parsing each rendering back.
"""

from __future__ import annotations

# Named so a failure message can say exactly which rule the value broke.
_FORBIDDEN = {
    "\n": "newline",
    "\r": "carriage return",
    '"': "double quote",
    "'": "single quote",
    "$": "dollar sign",
    "\\": "backslash",
    "`": "backtick",
    "#": "hash (pam_env ends a value at '#')",
}


def unsafe_characters(value):
    """Human-readable descriptions of the unsafe characters in ``value`` (first occurrence each)."""
    found = []
    for ch in value:
        if ch in _FORBIDDEN:
            reason = _FORBIDDEN[ch]
        elif ch.isspace():
            reason = "whitespace %r" % ch
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            reason = "control character %r" % ch
        elif ord(ch) > 0x7E:
            reason = "non-ASCII character %r" % ch
        else:
            continue
        if reason not in found:
            found.append(reason)
    return found
