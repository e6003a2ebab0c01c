#!/usr/bin/python
# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: neuron_repo
short_description: Configure the Neuron package repository's key and files in one task
version_added: 0.1.0
description:
  - Used by the C(neuron_ops.core_dump.neuron_tools) role. One call on the host does what used to take a dozen
    tasks, so a converged host costs one round trip.
  - Gets the repository signing key (downloads O(key_url) on the host, or takes O(key_content)) and refuses
    anything that is not an ASCII-armored PGP public key block before it changes anything.
  - Removes what older installs left behind (O(absent), shell globs), and the keys O(legacy_key_ids) from the
    C(apt-key) keyring O(legacy_keyring) when that keyring and C(apt-key) exist.
  - Writes the key to O(key_dest) and each of O(files) (text rendered on the controller, for example with the
    C(ansible.builtin.template) lookup), root-owned with mode C(0644), each only when its bytes, mode or owner
    differ. A file without O(files[].content) is removed.
  - Reports whether the Python that runs the module can import C(apt) and C(apt_pkg) (python3-apt), which the
    C(ansible.builtin.apt) module needs to resolve packages.
author:
  - neuron_ops developers (@neuron-ops)
options:
  key_dest:
    description:
      - Path of the keyring file that receives the key. Without it the key is neither fetched nor written.
    type: path
  key_url:
    description:
      - URL (C(http), C(https) or C(file)) of the ASCII-armored key, downloaded on the host, also in check mode
        (a read, so the diff is exact). Used when O(key_content) is empty.
    type: str
  key_content:
    description:
      - The ASCII-armored key itself; used instead of O(key_url) when not empty.
    type: str
    default: ""
  key_backup:
    description:
      - Keep a copy of the previous O(key_dest) (path returned in RV(files)) when it changes.
    type: bool
    default: false
  validate_certs:
    description:
      - Verify TLS certificates when downloading O(key_url).
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for O(key_url).
    type: int
    default: 30
  files:
    description:
      - The files to write or remove.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description:
          - Absolute path on the host.
        type: path
        required: true
      content:
        description:
          - The file's text. Omitted (or null), the file is removed.
        type: str
      backup:
        description:
          - Keep a copy of the previous file (path returned in RV(files)) when it changes.
        type: bool
        default: false
  absent:
    description:
      - Paths or shell globs of files to remove (legacy sources and keys). Directories are left alone.
    type: list
    elements: path
    default: []
  legacy_key_ids:
    description:
      - Long (16 hex digit) key ids to delete from O(legacy_keyring) with C(apt-key), when the keyring,
        C(apt-key) and C(gpg) exist.
    type: list
    elements: str
    default: []
  legacy_keyring:
    description:
      - The keyring of the deprecated C(apt-key) tool.
    type: path
    default: /etc/apt/trusted.gpg
requirements:
  - Python 3.9 or later on the managed host
extends_documentation_fragment:
  - neuron_ops.core_dump.attributes
attributes:
  check_mode:
    description: Downloads and checks the key, compares every file and reports what would change. It writes
      and removes nothing.
  diff_mode:
    support: full
    description: One diff per changed file, with its text before and after.
notes:
  - The key is refused (the module fails, nothing changed) when it cannot be downloaded or is not an
    ASCII-armored PGP public key block; RV(key_problem) is then V(true).
"""

EXAMPLES = r"""
- name: Configure the Neuron apt repository
  neuron_ops.core_dump.neuron_repo:
    key_url: https://apt.repos.neuron.amazonaws.com/GPG-PUB-KEY-AMAZON-AWS-NEURON.PUB
    key_dest: /etc/apt/keyrings/neuron.asc
    key_backup: true
    absent:
      - /etc/apt/sources.list.d/neuron.list
      - /etc/apt/trusted.gpg.d/*neuron*
    legacy_key_ids: [5749CAD8646D9185]
    files:
      - path: /etc/apt/sources.list.d/neuron.sources
        content: "{{ lookup('ansible.builtin.template', 'neuron.sources.j2') }}"
        backup: true
      - path: /etc/apt/preferences.d/neuron-tools.pref
  register: neuron_repo
"""

RETURN = r"""
changes:
  description: What changed (or would change in check mode), in order, each with C(path) and C(action)
    (C(create), C(update), C(attributes), C(remove) or C(apt-key del <id>)).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/etc/apt/sources.list.d/neuron.list", "action": "remove"}]
files:
  description: O(key_dest) (first, when given) and each of O(files), with C(dest), C(changed) and, when a copy
    was kept, C(backup_file).
  returned: always
  type: list
  elements: dict
  sample:
    - dest: /etc/apt/keyrings/neuron.asc
      changed: true
      backup_file: /etc/apt/keyrings/neuron.asc.4242.2026-12-08@00:00:00~
python_apt:
  description: Whether the module's Python imports C(apt) and C(apt_pkg).
  returned: always
  type: bool
key_problem:
  description: V(true) when the module failed because of the key (not downloaded, or not a public key block).
  returned: failure
  type: bool
"""

import glob  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.urls import fetch_url  # noqa: E402
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import filewriter  # noqa: E402

ARMOR = b"-----BEGIN PGP PUBLIC KEY BLOCK-----"
MODE = 0o644


class KeyProblem(Exception):
    pass


def fetch_key(module):
    """The key's bytes, from key_content or downloaded from key_url; KeyProblem when it is not a public key."""
    params = module.params
    if params["key_content"]:
        data = params["key_content"].encode("utf-8")
        if ARMOR not in data:
            raise KeyProblem("key_content is not an ASCII-armored PGP public key block")
        return data
    url = params["key_url"]
    response, info = fetch_url(module, url, timeout=params["timeout"])
    # file:// answers without a status; urllib raised already if the file is missing.
    status = info.get("status")
    if response is None or (status is not None and status != 200 and not url.startswith("file:")):
        raise KeyProblem(
            "Could not get the Neuron repository signing key from %s: %s" % (url, info.get("msg") or "no response")
        )
    data = response.read()
    if ARMOR not in data:
        raise KeyProblem(
            "Could not get the Neuron repository signing key from %s: the response is not an ASCII-armored PGP"
            " public key" % url
        )
    return data


def _needs_attributes(path):
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return False
    return stat.S_IMODE(info.st_mode) != MODE or info.st_uid != 0 or info.st_gid != 0


def _shown(path, data, after):
    """A file as the diff shows it: its text, or (too large, not UTF-8) filewriter's summary line."""
    if data is None:
        return ""
    text = filewriter.diff_text(data)
    if text is not None:
        return text
    digest = hashlib.sha256(data).hexdigest()
    if after:
        return filewriter.summary_line(digest, "%04o" % MODE, "root", "root")
    return filewriter.summary_of_existing(digest, os.stat(path))


def diff(change):
    shown = change.diff()
    shown["before"] = _shown(change.path, change.before, False)
    shown["after"] = _shown(change.path, change.after, True)
    return shown


def plan_absent(patterns):
    """Regular files and symlinks matching ``patterns``, sorted, each once."""
    found = set()
    for pattern in patterns:
        for path in glob.glob(pattern):
            if os.path.islink(path) or os.path.isfile(path):
                found.add(path)
    return sorted(found)


def legacy_keys(module):
    """(apt-key, ids present in the legacy keyring) or (None, []) when the keyring or apt-key is missing."""
    keyring, wanted = module.params["legacy_keyring"], module.params["legacy_key_ids"]
    apt_key = module.get_bin_path("apt-key")
    # apt-key needs gpg (a minimal Debian has apt-key but no gnupg): without it there is
    # nothing it could remove, as ansible.builtin.apt_key also concluded.
    if not wanted or apt_key is None or module.get_bin_path("gpg") is None or not os.path.exists(keyring):
        return None, []
    rc, out, err = module.run_command(
        [apt_key, "--keyring", keyring, "adv", "--list-public-keys", "--keyid-format=long"],
        environ_update={"LC_ALL": "C"},
    )
    if rc != 0:
        module.fail_json(msg="apt-key could not list %s: %s" % (keyring, err.strip()))
    listed = set()
    for line in out.splitlines():
        # "pub   rsa4096/5749CAD8646D9185 2019-..." (apt-key's own format)
        fields = line.split()
        if len(fields) > 1 and fields[0] in ("pub", "sub") and "/" in fields[1]:
            listed.add(fields[1].split("/", 1)[1].upper())
    return apt_key, [key_id for key_id in wanted if key_id.upper()[-16:] in listed]


def python_apt_importable():
    try:
        import apt  # noqa: F401  pylint: disable=unused-import
        import apt_pkg  # noqa: F401  pylint: disable=unused-import
    except ImportError:
        return False
    return True


def main():
    module = AnsibleModule(
        argument_spec={
            "key_dest": {"type": "path"},
            "key_url": {"type": "str", "no_log": False},
            "key_content": {"type": "str", "default": "", "no_log": False},
            "key_backup": {"type": "bool", "default": False},
            "validate_certs": {"type": "bool", "default": True},
            "timeout": {"type": "int", "default": 30},
            "files": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "path": {"type": "path", "required": True},
                    "content": {"type": "str"},
                    "backup": {"type": "bool", "default": False},
                },
            },
            "absent": {"type": "list", "elements": "path", "default": []},
            "legacy_key_ids": {"type": "list", "elements": "str", "default": [], "no_log": False},
            "legacy_keyring": {"type": "path", "default": "/etc/apt/trusted.gpg"},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["key_dest"] and not (params["key_content"] or params["key_url"]):
        module.fail_json(msg="key_dest needs key_url or key_content")

    # Everything is read and checked before anything changes: a refused key leaves the host as it was.
    wanted = []  # (path, bytes or None, backup)
    if params["key_dest"]:
        try:
            wanted.append((params["key_dest"], fetch_key(module), params["key_backup"]))
        except KeyProblem as exc:
            module.fail_json(msg=str(exc), key_problem=True)
    for spec in params["files"]:
        content = spec["content"]
        wanted.append((spec["path"], None if content is None else content.encode("utf-8"), spec["backup"]))
    paths = [path for path, _data, _backup in wanted]
    if len(set(paths)) != len(paths):
        module.fail_json(msg="a path is given twice (key_dest and files)")

    changes, diffs, files, plan = [], [], [], []
    for path in plan_absent(params["absent"]):
        if path not in paths:
            changes.append({"path": path, "action": "remove"})
            plan.append((filewriter.FileChange(None, path, filewriter.read_bytes(path), None), False))
    apt_key, stale_ids = legacy_keys(module)
    for key_id in stale_ids:
        changes.append({"path": params["legacy_keyring"], "action": "apt-key del %s" % key_id})
    for path, data, backup in wanted:
        change = filewriter.FileChange(None, path, filewriter.read_bytes(path), data, mode=MODE)
        attributes = data is not None and not change.changed and _needs_attributes(path)
        entry = {"dest": path, "changed": change.changed or attributes}
        files.append(entry)
        if change.changed:
            action = "remove" if data is None else ("create" if change.before is None else "update")
            changes.append({"path": path, "action": action})
            plan.append((change, backup))
        elif attributes:
            changes.append({"path": path, "action": "attributes"})
            plan.append((change, False))
    for change, _backup in plan:
        if change.changed:
            diffs.append(diff(change))

    result = {"changed": bool(changes), "changes": changes, "files": files, "python_apt": python_apt_importable()}
    if module._diff:
        result["diff"] = diffs
    if not changes or module.check_mode:
        module.exit_json(**result)

    try:
        for change, backup in plan:
            if backup and change.before is not None:
                next(entry for entry in files if entry["dest"] == change.path)["backup_file"] = module.backup_local(
                    change.path
                )
            if change.changed:
                change.apply(module)
                if change.after is not None and os.geteuid() == 0:
                    os.chown(change.path, 0, 0)
            if change.after is not None:
                os.chmod(change.path, MODE)
        for key_id in stale_ids:
            # apt-key del wants the short id (8 digits) on older apt versions.
            rc, _out, err = module.run_command(
                [apt_key, "--keyring", params["legacy_keyring"], "del", key_id[-8:]], environ_update={"LC_ALL": "C"}
            )
            if rc != 0:
                module.fail_json(msg="apt-key could not remove %s: %s" % (key_id, err.strip()), **result)
    except OSError as exc:
        module.fail_json(msg="configuring the repository failed: %s" % exc, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
