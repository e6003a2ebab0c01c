# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""containerd's ``config.toml``: whether its CRI plugin reads CDI specs, and turning that on.

Python 3.9 hosts have no TOML library, so this is a small, strict, line-oriented
reader: it splits the file into statements (table headers and ``key = value``
pairs, values possibly spanning lines) and knows each one's lines, which is
enough to tell where ``enable_cdi`` lives and to change that one line. What it
cannot place with certainty is refused, never guessed.

Facts from containerd's source (docs/containers.md, "Enabling CDI in containerd"):

- containerd 1.7 (``pkg/cri/config/config_unix.go``, ``DefaultConfig``): the CRI
  plugin is ``io.containerd.grpc.v1.cri``; ``enable_cdi`` defaults to false and
  ``cdi_spec_dirs`` to ``/etc/cdi`` and ``/var/run/cdi``. A plugin's table is decoded
  over that default (``services/server/config/config.go``, ``Decode``), so a file
  holding only ``enable_cdi = true`` changes nothing else.
- ``imports`` replace a plugin's whole table (``mergeConfig``: "Replace entire
  sections instead of merging map's values"): a drop-in with the CRI table would
  wipe the node's CRI settings. So the main file is edited in place.
- containerd 2.x (``internal/cri/config/config_unix.go``, ``DefaultRuntimeConfig``):
  ``enable_cdi`` defaults to true in ``io.containerd.cri.v1.runtime`` (config
  ``version = 3``); a ``version = 2`` file's ``io.containerd.grpc.v1.cri`` keys are
  migrated into it where it does not set them (``plugins/cri/runtime/plugin.go``,
  ``configMigration``).
- No ``version`` means version 1 (``MigrateConfig``); fully qualified plugin names
  keep their meaning there.
"""

from __future__ import annotations

import json
import os
import re
import stat

CRI_V2 = "io.containerd.grpc.v1.cri"  # containerd 1.7 (and config version 2 on 2.x)
CRI_V3 = "io.containerd.cri.v1.runtime"  # containerd 2.x, config version 3
KEY = "enable_cdi"
SPEC_DIRS_KEY = "cdi_spec_dirs"
DEFAULT_SPEC_DIRS = ("/etc/cdi", "/var/run/cdi")

# What a new file holds (containerd 1.7, no config.toml yet): the CRI plugin's defaults plus this one key.
NEW_FILE = (
    "# Written by neuron_ops.core_dump (containerd_cdi): the CRI plugin reads CDI specs.\n"
    "version = 2\n"
    "\n"
    '[plugins."%s"]\n'
    "  %s = true\n" % (CRI_V2, KEY)
)


class Refused(Exception):
    """The file cannot be edited safely; the message says why and what to do."""


class ParseError(Exception):
    def __init__(self, line, why):
        super().__init__("line %d: %s" % (line, why))
        self.line = line


class Statement:
    """A table header (``kind`` table / array_table) or a ``key = value`` pair (``kind`` pair)."""

    def __init__(self, kind, key, first, last, table=(), value=None, value_kind=None, span=None):
        self.kind = kind
        self.key = key  # tuple of key parts as written (header: the table; pair: relative to ``table``)
        self.first = first  # 0-based line index of the statement's first line
        self.last = last  # and of its last line
        self.table = table
        self.value = value  # the value's source text (pairs only)
        self.value_kind = value_kind  # string, array, inline_table, bool, integer, scalar
        self.span = span  # (start, end) offsets of the value in the text (pairs only)

    @property
    def full_key(self):
        return self.table + self.key


_BARE = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^\s,\]\}#\[\{\"']+")


class _Scanner:
    def __init__(self, text):
        self.text = text
        self.pos = 0

    def line(self):
        return self.text.count("\n", 0, self.pos)

    def peek(self, n=1):
        return self.text[self.pos : self.pos + n]

    def skip_blanks(self):
        while self.peek() in (" ", "\t"):
            self.pos += 1

    def skip_space_and_comments(self):
        """Whitespace, newlines and comments (inside arrays)."""
        while True:
            char = self.peek()
            if char in (" ", "\t", "\n", "\r"):
                self.pos += 1
            elif char == "#":
                self.skip_comment()
            else:
                return

    def skip_comment(self):
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end

    def end_of_line(self):
        """Only blanks and a comment may follow a statement on its line."""
        self.skip_blanks()
        if self.peek() == "#":
            self.skip_comment()
        if self.peek() == "\r":
            self.pos += 1
        if self.pos < len(self.text) and self.peek() != "\n":
            raise ParseError(self.line() + 1, "unexpected text after a complete statement")
        self.pos += 1

    def key(self):
        parts = []
        while True:
            self.skip_blanks()
            char = self.peek()
            if char == '"':
                parts.append(self.basic_string(key=True))
            elif char == "'":
                parts.append(self.literal_string(key=True))
            else:
                match = _BARE.match(self.text, self.pos)
                if not match:
                    raise ParseError(self.line() + 1, "a key was expected")
                parts.append(match.group(0))
                self.pos = match.end()
            self.skip_blanks()
            if self.peek() != ".":
                return tuple(parts)
            self.pos += 1

    def basic_string(self, key=False):
        if self.peek(3) == '"""':
            if key:
                raise ParseError(self.line() + 1, "a multi-line string cannot be a key")
            end = self.text.find('"""', self.pos + 3)
            while end >= 0 and _escaped(self.text, end):
                end = self.text.find('"""', end + 1)
            if end < 0:
                raise ParseError(self.line() + 1, "unterminated multi-line string")
            while self.text[end + 3 : end + 4] == '"':  # up to two quotes may end the content
                end += 1
            value = self.text[self.pos + 3 : end]
            self.pos = end + 3
            return value
        self.pos += 1
        out = []
        while True:
            char = self.peek()
            if char in ("", "\n"):
                raise ParseError(self.line() + 1, "unterminated string")
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                escape = self.peek()
                simple = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
                if escape in simple:
                    out.append(simple[escape])
                    self.pos += 1
                elif escape in ("u", "U"):
                    size = 4 if escape == "u" else 8
                    digits = self.text[self.pos + 1 : self.pos + 1 + size]
                    if not re.fullmatch(r"[0-9A-Fa-f]{%d}" % size, digits):
                        raise ParseError(self.line() + 1, "bad unicode escape")
                    out.append(chr(int(digits, 16)))
                    self.pos += 1 + size
                else:
                    raise ParseError(self.line() + 1, "bad escape in a string")
            else:
                out.append(char)

    def literal_string(self, key=False):
        if self.peek(3) == "'''":
            if key:
                raise ParseError(self.line() + 1, "a multi-line string cannot be a key")
            end = self.text.find("'''", self.pos + 3)
            if end < 0:
                raise ParseError(self.line() + 1, "unterminated multi-line string")
            while self.text[end + 3 : end + 4] == "'":
                end += 1
            value = self.text[self.pos + 3 : end]
            self.pos = end + 3
            return value
        end = self.text.find("'", self.pos + 1)
        newline = self.text.find("\n", self.pos + 1)
        if end < 0 or (0 <= newline < end):
            raise ParseError(self.line() + 1, "unterminated string")
        value = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return value

    def value(self):
        """(kind, python value or None); strings and arrays of strings are decoded."""
        char = self.peek()
        if char == '"':
            return "string", self.basic_string()
        if char == "'":
            return "string", self.literal_string()
        if char == "[":
            self.pos += 1
            items = []
            while True:
                self.skip_space_and_comments()
                if self.peek() == "]":
                    self.pos += 1
                    return "array", items
                if self.peek() == "":
                    raise ParseError(self.line() + 1, "unterminated array")
                items.append(self.value())
                self.skip_space_and_comments()
                if self.peek() == ",":
                    self.pos += 1
                elif self.peek() != "]":
                    raise ParseError(self.line() + 1, "',' or ']' expected in an array")
        if char == "{":
            self.pos += 1
            self.skip_blanks()
            if self.peek() == "}":
                self.pos += 1
                return "inline_table", None
            while True:
                self.key()
                self.skip_blanks()
                if self.peek() != "=":
                    raise ParseError(self.line() + 1, "'=' expected in an inline table")
                self.pos += 1
                self.skip_blanks()
                self.value()
                self.skip_blanks()
                if self.peek() == "}":
                    self.pos += 1
                    return "inline_table", None
                if self.peek() != ",":
                    raise ParseError(self.line() + 1, "',' or '}' expected in an inline table")
                self.pos += 1
                self.skip_blanks()
        match = _SCALAR.match(self.text, self.pos)
        if not match:
            raise ParseError(self.line() + 1, "a value was expected")
        self.pos = match.end()
        word = match.group(0)
        if word in ("true", "false"):
            return "bool", word == "true"
        if re.fullmatch(r"[+-]?\d+", word.replace("_", "")):
            return "integer", int(word.replace("_", ""))
        return "scalar", None


def _escaped(text, index):
    backslashes = 0
    while index - backslashes - 1 >= 0 and text[index - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def parse(text):
    """The statements of ``text`` in order; ParseError names the first line it cannot read."""
    scanner = _Scanner(text)
    statements = []
    table = ()
    while scanner.pos < len(text):
        scanner.skip_blanks()
        char = scanner.peek()
        if char in ("\n", "\r", "#", ""):
            scanner.end_of_line()
            continue
        first = scanner.line()
        if char == "[":
            array = scanner.peek(2) == "[["
            scanner.pos += 2 if array else 1
            key = scanner.key()
            closing = "]]" if array else "]"
            if scanner.peek(len(closing)) != closing:
                raise ParseError(first + 1, "'%s' expected after a table name" % closing)
            scanner.pos += len(closing)
            scanner.end_of_line()
            table = key
            statements.append(Statement("array_table" if array else "table", key, first, first))
            continue
        key = scanner.key()
        if scanner.peek() != "=":
            raise ParseError(first + 1, "'=' expected after a key")
        scanner.pos += 1
        scanner.skip_blanks()
        start = scanner.pos
        value_kind, value = scanner.value()
        span = (start, scanner.pos)
        last = scanner.line()
        scanner.end_of_line()
        statements.append(Statement("pair", key, first, last, table, value, value_kind, span))
    return statements


def _lf(text):
    return text.replace("\r\n", "\n")


def config_version(statements):
    """The top-level ``version`` (an int), or None when the file sets none."""
    for statement in statements:
        if statement.kind == "pair" and statement.table == () and statement.key == ("version",):
            if statement.value_kind != "integer":
                raise Refused("'version' is not an integer")
            return statement.value
    return None


def _cri_plugins(config_ver, containerd_version):
    """The CRI plugin tables that hold ``enable_cdi`` for containerd, first the one it reads first.

    containerd 2.x reads its runtime plugin's own table; from a version 1 or 2 file it
    also takes the 1.7 table's keys the runtime table does not set (configMigration).
    """
    if config_ver is not None and config_ver >= 3:
        return [CRI_V3]
    if containerd_version is not None and containerd_version >= (2, 0):
        return [CRI_V3, CRI_V2]
    return [CRI_V2]


def _settings(statements, plugin):
    """Every pair that sets ``enable_cdi`` of ``plugin``, however it is written (dotted keys too)."""
    return [s for s in statements if s.kind == "pair" and s.full_key == ("plugins", plugin, KEY)]


def cdi_setting(text, containerd_version=None):
    """(True/False/None, where or why) of ``enable_cdi`` as containerd reads ``text``.

    None with a reason when the file cannot be read with certainty; None with
    "not set" when the key is absent (the runtime's default applies).
    """
    try:
        statements = parse(_lf(text or ""))
        ver = config_version(statements)
    except (ParseError, Refused) as exc:
        return None, "cannot read %s: %s" % ("config.toml", exc)
    for plugin in _cri_plugins(ver, containerd_version):
        setting = _settings(statements, plugin)
        if setting:
            last = setting[-1]
            if last.value_kind != "bool":
                return None, "%s in plugins.%s is not true or false" % (KEY, plugin)
            return last.value, "plugins.%s %s = %s" % (plugin, KEY, "true" if last.value else "false")
    return None, "not set"


def _problems(statements, plugin):
    """Why the CRI table of ``plugin`` cannot be edited line by line ([] when it can)."""
    path = ("plugins", plugin)
    problems = []
    headers = [s for s in statements if s.kind in ("table", "array_table")]
    seen = set()
    for header in headers:
        if header.kind == "table" and header.key in seen:
            problems.append("table [%s] is defined twice (line %d)" % (".".join(header.key), header.first + 1))
        seen.add(header.key)
        if header.kind == "array_table" and _related(header.key, path):
            problems.append("[[%s]] is an array of tables (line %d)" % (".".join(header.key), header.first + 1))
    for statement in statements:
        if statement.kind != "pair":
            continue
        full = statement.full_key
        if statement.table == path:
            if len(statement.key) > 1 and statement.key[0] in (KEY, SPEC_DIRS_KEY):
                problems.append("line %d uses %s as a table" % (statement.first + 1, statement.key[0]))
            continue  # other keys of the table itself, dotted or not, are fine
        if len(full) > len(path) and full[: len(path)] == path and not _in_subtable(statement, path):
            problems.append(
                'line %d sets %s through a dotted key outside [plugins."%s"]'
                % (statement.first + 1, ".".join(full), plugin)
            )
        elif len(full) <= len(path) and path[: len(full)] == full:
            problems.append(
                "line %d defines %s as an inline value (%s)"
                % (statement.first + 1, ".".join(full), statement.value_kind)
            )
    settings = [s for s in statements if s.kind == "pair" and s.table == path and s.key == (KEY,)]
    if len(settings) > 1:
        problems.append('%s is set %d times in [plugins."%s"]' % (KEY, len(settings), plugin))
    for setting in settings:
        if setting.value_kind != "bool":
            problems.append("%s on line %d is not true or false" % (KEY, setting.first + 1))
        elif setting.first != setting.last:
            problems.append("%s on line %d spans several lines" % (KEY, setting.first + 1))
    return problems


def _related(key, path):
    shorter = min(len(key), len(path))
    return key[:shorter] == path[:shorter]


def _in_subtable(statement, path):
    """A pair under a header below the plugin's table (e.g. [plugins."...cri".containerd])."""
    return len(statement.table) > len(path) and statement.table[: len(path)] == path


def _header(statements, path):
    found = [s for s in statements if s.kind == "table" and s.key == path]
    return found[0] if found else None


def _same_dir(a, b):
    def norm(p):
        p = p.rstrip("/") or "/"
        return "/run" + p[len("/var/run") :] if p == "/var/run" or p.startswith("/var/run/") else p

    return norm(a) == norm(b)


def plan(text, containerd_version, spec_dir):
    """(new text or None for "no change", why) that makes containerd's CRI plugin read CDI specs.

    ``text`` is the file (None: no file), ``containerd_version`` a tuple from
    ``container_runtimes.parse_version``. Raises Refused for what cannot be edited
    safely. Never turns CDI off.
    """
    if containerd_version is None:
        raise Refused("the containerd version is unknown (containerd --version failed)")
    if containerd_version < (1, 7):
        raise Refused(
            "containerd %s has no CDI support (it came with 1.7); upgrade containerd"
            % ".".join(str(p) for p in containerd_version)
        )
    major2 = containerd_version >= (2, 0)
    if text is None:
        if major2:
            return None, "containerd 2.x reads CDI specs by default; no config.toml needed"
        return (
            NEW_FILE,
            "new config.toml with only %s = true in the CRI plugin (its other settings stay defaults)" % KEY,
        )
    if "\r" in text:
        raise Refused("the file has CR line endings")
    try:
        statements = parse(text)
    except ParseError as exc:
        raise Refused("cannot be read line by line (%s)" % exc) from exc
    ver = config_version(statements)
    if ver is None:
        if not statements:
            if major2:
                return None, "containerd 2.x reads CDI specs by default"
            return text + ("" if text.endswith("\n") or not text else "\n") + NEW_FILE, (
                "version 2 and the CRI plugin with %s = true added below the comments" % KEY
            )
        if major2 and cdi_setting(text, containerd_version)[0] is not False:
            return None, "containerd 2.x reads CDI specs by default and the file does not turn that off"
        raise Refused(
            "the file has no 'version' line, so containerd reads it as version 1 (plugin names without "
            "'io.containerd.' mean something else there); add 'version = 2' after checking its plugin names, "
            "or run 'containerd config migrate' on containerd 2.x"
        )
    if ver < 2:
        raise Refused("config version %d is not edited; migrate it to version 2 first" % ver)
    if ver > 3:
        raise Refused("config version %d is newer than this module knows" % ver)
    if ver == 3 and not major2:
        raise Refused("a version 3 file on containerd %s is not edited" % ".".join(str(p) for p in containerd_version))
    plugins = _cri_plugins(ver, containerd_version)
    problems = []
    for plugin in plugins:
        problems.extend(_problems(statements, plugin))
    if problems:
        raise Refused("; ".join(problems))
    lines = text.split("\n")
    edits = {}  # line index -> new line
    inserted = None  # (after line index, new line) or None
    why = []
    for plugin in plugins:
        for statement in _settings(statements, plugin):
            if statement.value is False:
                edits[statement.first] = _set_true(lines[statement.first])
                why.append('%s = false turned to true in [plugins."%s"]' % (KEY, plugin))
    if not major2 and not _settings(statements, CRI_V2):
        header = _header(statements, ("plugins", CRI_V2))
        if header is None:
            inserted = (len(lines), None)
            why.append('[plugins."%s"] added with %s = true' % (CRI_V2, KEY))
        else:
            indent = _indent_of(statements, ("plugins", CRI_V2), lines)
            inserted = (header.first, "%s%s = true" % ("  " if indent is None else indent, KEY))
            why.append('%s = true inserted after [plugins."%s"]' % (KEY, CRI_V2))
    for plugin in plugins:
        path = ("plugins", plugin)
        for statement in [s for s in statements if s.kind == "pair" and s.full_key == (*path, SPEC_DIRS_KEY)]:
            values = statement.value if statement.value_kind == "array" else None
            if values is None or any(kind != "string" for kind, _v in values):
                raise Refused("%s on line %d is not an array of strings" % (SPEC_DIRS_KEY, statement.first + 1))
            if any(_same_dir(v, spec_dir) for _k, v in values):
                continue
            if statement.first != statement.last or statement.table != path:
                raise Refused(
                    "%s on line %d does not list %s, where the CDI spec is written, and spans several lines; "
                    "add the directory there yourself" % (SPEC_DIRS_KEY, statement.first + 1, spec_dir)
                )
            line = lines[statement.first]
            line_start = sum(len(x) + 1 for x in lines[: statement.first])
            start, end = statement.span[0] - line_start, statement.span[1] - line_start
            new_array = "[%s]" % ", ".join(json.dumps(v) for v in [v for _k, v in values] + [spec_dir])
            edits[statement.first] = line[:start] + new_array + line[end:]
            why.append('%s added to %s in [plugins."%s"]' % (spec_dir, SPEC_DIRS_KEY, plugin))
    if not why:
        if major2:
            return None, "containerd 2.x reads CDI specs by default and the file does not turn that off"
        return None, "%s = true is already set" % KEY
    new_lines = [edits.get(i, line) for i, line in enumerate(lines)]
    if inserted is not None:
        where, line = inserted
        if line is None:
            while new_lines and new_lines[-1] == "":
                new_lines.pop()
            new_lines.extend(["", '[plugins."%s"]' % CRI_V2, "  %s = true" % KEY, ""])
        else:
            new_lines.insert(where + 1, line)
    return "\n".join(new_lines), "; ".join(why)


def read(path, required_uid=0):
    """The text of containerd's config at ``path`` (None: no file); Refused when it is not ours to edit.

    A symlink, anything but a regular file, a file not owned by ``required_uid``
    (root) or not UTF-8 is refused: the edit would land elsewhere or in a file
    someone else manages.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        raise Refused("%s is a symlink; edit the file it points to yourself" % path)
    if not stat.S_ISREG(info.st_mode):
        raise Refused("%s is not a regular file" % path)
    if info.st_uid != required_uid:
        raise Refused("%s is owned by uid %d, not root" % (path, info.st_uid))
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused("%s is not UTF-8 (%s)" % (path, exc)) from exc


def _set_true(line):
    return re.sub(r"(=\s*)false\b", r"\1true", line, count=1)


def _indent_of(statements, path, lines):
    for statement in statements:
        if statement.kind == "pair" and statement.table == path:
            line = lines[statement.first]
            return line[: len(line) - len(line.lstrip(" \t"))]
    return None
