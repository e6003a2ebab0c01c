#!/usr/bin/python
# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: core_dump_program
short_description: Install the files of the neuron-core-dump host program in one task
version_added: 0.1.0
description:
  - Used by the C(neuron_ops.core_dump.neuron_dump) role to install the host program (the C(neuron_core_dump)
    package, the hook, the C(neuron-core-dump) command). One task installs or updates every file, root-owned, each
    written to a temporary name, checked against its sha256 and renamed into place, so the hook never runs a
    half-written file.
  - An action plugin runs on the controller. It reads each file (O(files[].src) or O(files[].content)) and asks the
    host, in one call, which files differ by sha256, mode or owner. A converged host costs that one call. Only
    when something differs does it send one archive of the files that differ, and a second call installs them.
  - Directories in O(directories) are created root-owned with their mode (C(0755) unless given), missing parents
    included (C(0755)). A symlink where a directory or a file is expected is refused, never followed.
  - In each directory of O(purge), a file that O(files) does not list is removed (with its C(__pycache__) entries),
    so a module that a newer version dropped does not stay importable.
author:
  - neuron_ops developers (@neuron-ops)
options:
  files:
    description:
      - The files to install.
    type: list
    elements: dict
    required: true
    suboptions:
      dest:
        description:
          - Absolute path on the host. With O(files[].src), a O(files[].dest) ending with C(/) is a directory and the
            file keeps its name there.
        type: path
        required: true
      src:
        description:
          - Path of the file on the controller. Exactly one of O(files[].src) and O(files[].content) is given.
        type: path
      content:
        description:
          - The file's text, for example rendered with the C(ansible.builtin.template) lookup.
        type: str
      mode:
        description:
          - The mode, as an octal string such as C("0644") (or an integer, as YAML reads an unquoted C(0644)).
        type: raw
        required: true
      sha256:
        description:
          - Set by the action plugin from O(files[].src) or O(files[].content); not given by hand.
        type: str
  directories:
    description:
      - Directories to create (root-owned) before the files are written, each a path (mode C(0755)) or a dict with
        C(path) and C(mode) (an octal string such as C("1733")). An existing one gets that owner and mode.
    type: list
    elements: raw
    default: []
  purge:
    description:
      - Directories in which files that O(files) does not list are removed. Subdirectories other than
        C(__pycache__) are left alone.
    type: list
    elements: path
    default: []
  archive:
    description:
      - Set by the action plugin, not by hand. Path of an uncompressed tar on the host whose members are named by
        the index of the file in O(files).
    type: path
requirements:
  - Python 3.9 or later on the managed host (the module uses the standard library only)
extends_documentation_fragment:
  - neuron_ops.core_dump.attributes
attributes:
  check_mode:
    description: Compares every file and directory and reports what would change. It writes nothing.
  diff_mode:
    support: full
    description: One diff per changed file, with the text before and after for text files up to 64 KiB (the sha256
      and mode otherwise).
"""

EXAMPLES = r"""
- name: Install the host program
  neuron_ops.core_dump.core_dump_program:
    directories:
      - /usr/local/lib/neuron-core-dump/neuron_core_dump
      - {path: /var/spool/neuron-core-dump/incoming, mode: "1733"}
    files:
      - src: "{{ role_path }}/files/neuron_core_dump/hook.py"
        dest: /usr/local/lib/neuron-core-dump/neuron_core_dump/hook.py
        mode: "0644"
      - content: "{{ lookup('ansible.builtin.template', 'bin/neuron-core-dump.j2') }}"
        dest: /usr/local/bin/neuron-core-dump
        mode: "0755"
    purge:
      - /usr/local/lib/neuron-core-dump/neuron_core_dump
"""

RETURN = r"""
changes:
  description: What changed (or would change in check mode), one entry per path, with C(path), C(action)
    (C(directory), C(create), C(update), C(attributes) or C(remove)) and, except for C(remove), the C(mode) set.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/usr/local/lib/neuron-core-dump/neuron_core_dump/hook.py", "action": "update", "mode": "0644"}]
"""

import contextlib  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402
import tarfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import filewriter  # noqa: E402

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class Refused(Exception):
    pass


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _root_owned(info):
    return info.st_uid == 0 and info.st_gid == 0


def plan_directories(directories):
    """``directories``: (path, mode) pairs."""
    changes = []
    for path, mode in directories:
        info = _lstat(path)
        if info is None:
            changes.append({"path": path, "action": "directory", "mode": mode})
        elif not stat.S_ISDIR(info.st_mode):
            raise Refused("%s exists and is not a directory (a symlink is never followed)" % path)
        elif stat.S_IMODE(info.st_mode) != mode or not _root_owned(info):
            changes.append({"path": path, "action": "attributes", "mode": mode})
    return changes


def plan_files(files):
    changes = []
    for index, spec in enumerate(files):
        path, mode = spec["dest"], spec["mode"]
        info = _lstat(path)
        if info is None:
            changes.append({"path": path, "action": "create", "index": index, "mode": mode})
        elif not stat.S_ISREG(info.st_mode):
            raise Refused("%s exists and is not a regular file (a symlink is never followed)" % path)
        elif filewriter.sha256_file(path, follow=False) != spec["sha256"]:
            changes.append({"path": path, "action": "update", "index": index, "mode": mode})
        elif stat.S_IMODE(info.st_mode) != mode or not _root_owned(info):
            changes.append({"path": path, "action": "attributes", "mode": mode})
    return changes


def plan_purge(purge, files):
    keep = {os.path.normpath(spec["dest"]) for spec in files}
    changes = []
    for directory in purge:
        info = _lstat(directory)
        if info is None or not stat.S_ISDIR(info.st_mode):
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            entry = os.lstat(path)
            if path not in keep and not stat.S_ISDIR(entry.st_mode):
                changes.append({"path": path, "action": "remove"})
    return changes


def _write_member(tar, spec, change):
    """Write member ``change['index']`` next to its destination, check its sha256, rename it into place."""
    member = tar.getmember(str(change["index"]))
    source = tar.extractfile(member)
    if source is None:
        raise Refused("archive member %s is not a file" % member.name)
    directory, name = os.path.split(change["path"])
    temp = os.path.join(directory, ".%s.ncd-%d.tmp" % (name, os.getpid()))
    fd = os.open(temp, _CREATE, 0o600)
    try:
        digest = hashlib.sha256()
        for chunk in iter(lambda: source.read(1024 * 1024), b""):
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        if digest.hexdigest() != spec["sha256"]:
            raise Refused("%s: the archive's bytes do not match their sha256" % change["path"])
        os.fchown(fd, 0, 0)
        os.fchmod(fd, change["mode"])
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.rename(temp, change["path"])
    finally:
        if fd is not None:
            os.close(fd)
        if os.path.lexists(temp):
            os.unlink(temp)


def _remove(path):
    os.unlink(path)
    stem, ext = os.path.splitext(os.path.basename(path))
    cache = os.path.join(os.path.dirname(path), "__pycache__")
    if ext == ".py" and os.path.isdir(cache) and not os.path.islink(cache):
        for name in os.listdir(cache):
            if name.startswith(stem + ".") and name.endswith(".pyc"):
                os.unlink(os.path.join(cache, name))


def apply(changes, files, archive):
    """Carry out ``changes`` in order (directories first); ``archive`` (None when nothing is written) holds the
    bytes of the files to create or update."""
    with tarfile.open(archive, "r:") if archive else contextlib.nullcontext() as tar:
        for change in changes:
            action = change["action"]
            if action == "directory":
                os.makedirs(change["path"], 0o755, exist_ok=True)  # missing parents too, as the file module does
                os.chown(change["path"], 0, 0)
                os.chmod(change["path"], change["mode"])
            elif action in ("create", "update"):
                _write_member(tar, files[change["index"]], change)
            elif action == "attributes":
                os.chown(change["path"], 0, 0, follow_symlinks=False)
                os.chmod(change["path"], change["mode"])
            elif action == "remove":
                _remove(change["path"])


def _describe(path, text):
    """A file as the diff shows it (filewriter: its text, else a summary line); "" when it does not exist."""
    info = _lstat(path)
    if info is None:
        return ""
    regular = stat.S_ISREG(info.st_mode)
    if text and regular and info.st_size <= filewriter.TEXT_DIFF_LIMIT:
        with open(path, "rb") as handle:
            shown = filewriter.diff_text(handle.read())
        if shown is not None:
            return shown
    return filewriter.summary_of_existing(filewriter.sha256_file(path, follow=False) if regular else "directory", info)


def _mode(value):
    """The mode as an int, from "0644" or from the integer YAML makes of an unquoted 0644; None if invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        mode = value
    else:
        try:
            mode = int(str(value), 8)
        except ValueError:
            return None
    return mode if 0 <= mode <= 0o7777 else None


def check_arguments(module):
    for spec in module.params["files"]:
        if not spec["sha256"] or len(spec["sha256"]) != 64:
            module.fail_json(msg="%s: no sha256; run this module through its action plugin" % spec["dest"])
        spec["mode"] = _mode(spec["mode"])
        if spec["mode"] is None:
            module.fail_json(msg='%s: mode is not an octal mode such as "0644"' % spec["dest"])
    directories = []
    for entry in module.params["directories"]:
        path, mode = entry, "0755"
        if isinstance(entry, dict):
            path, mode = entry.get("path"), entry.get("mode", "0755")
            if set(entry) - {"path", "mode"}:
                module.fail_json(msg="directories: %r has keys other than path and mode" % (entry,))
        if not isinstance(path, str) or _mode(mode) is None:
            module.fail_json(msg="directories: %r is not a path or a dict with path and an octal mode" % (entry,))
        directories.append((path, _mode(mode)))
    module.params["directories"] = directories
    for path in [spec["dest"] for spec in module.params["files"]] + [path for path, _unused in directories]:
        if not os.path.isabs(path) or os.path.normpath(path) != path:
            module.fail_json(msg="%r is not an absolute, normalized path" % path)
    dests = [spec["dest"] for spec in module.params["files"]]
    if len(set(dests)) != len(dests):
        module.fail_json(msg="a destination is listed twice in files")


def _public(change):
    public = {"path": change["path"], "action": change["action"]}
    if "mode" in change:
        public["mode"] = "%04o" % change["mode"]
    return public


def main():
    module = AnsibleModule(
        argument_spec={
            "files": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "dest": {"type": "path", "required": True},
                    "src": {"type": "path"},
                    "content": {"type": "str", "no_log": False},
                    "mode": {"type": "raw", "required": True},
                    "sha256": {"type": "str"},
                },
            },
            "directories": {"type": "list", "elements": "raw", "default": []},
            "purge": {"type": "list", "elements": "path", "default": []},
            "archive": {"type": "path"},
        },
        supports_check_mode=True,
    )
    check_arguments(module)
    files = module.params["files"]
    try:
        changes = plan_directories(module.params["directories"]) + plan_files(files)
        changes += plan_purge(module.params["purge"], files)
    except (Refused, OSError) as exc:
        module.fail_json(msg=str(exc))
    needs_bytes = any(change["action"] in ("create", "update") for change in changes)
    result = {
        "changed": bool(changes),
        "changes": [_public(change) for change in changes],
        "needs_archive": needs_bytes and not module.params["archive"],
    }
    if module._diff:
        result["diff"] = [
            {
                "before_header": change["path"],
                "after_header": change["path"],
                "before": _describe(change["path"], change["action"] != "attributes"),
            }
            for change in changes
        ]
    if changes and not module.check_mode and not result["needs_archive"]:
        try:
            apply(changes, files, module.params["archive"] if needs_bytes else None)
        except (Refused, OSError, tarfile.TarError, KeyError) as exc:
            module.fail_json(msg="installing the host program failed: %s" % exc, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
