#!/usr/bin/python
# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: core_dump_job_stage
short_description: Stage one job's local dump dirs for a pull to the controller, with a manifest of their files
version_added: 0.1.0
description:
  - Used by the C(neuron_ops.core_dump.pull_job) playbook for fleets without S3. With O(state=present) it copies
    every regular file of each dump dir in O(paths) into a directory only root can read, O(staging_dir), under
    numbered names. It returns a manifest per dump dir that lists each file's name (C(name_b64) when the name is
    not plain UTF-8), size, sha256 and staged name. The controller fetches the staged files and verifies them
    against that manifest with M(neuron_ops.core_dump.core_dump_job_fetch) (option C(from_dir)).
  - Dump dirs belong to the workload's user, who may swap a file for a symlink at any time. So the module never
    fetches from the dump dir itself. Each file is opened without following symlinks, checked to be a regular file
    and copied from that descriptor, so what the controller gets is exactly what was hashed. Symlinks and other
    non-regular files are listed as skipped, as are names starting with a dot (files still being written) and
    C(*-manifest.json), the same as the uploader.
  - With O(state=absent), removes O(staging_dir).
author:
  - neuron_ops developers (@neuron-ops)
options:
  paths:
    description:
      - The job's dump dirs on this host, such as the C(path) of each entry of
        C(dumps) of M(neuron_ops.core_dump.core_dump_info) whose C(job_key) is the job.
      - The last component must be a directory, not a symlink.
    type: list
    elements: path
    default: []
  name:
    description:
      - Name of this host's manifests (the directory on the controller), usually the inventory host name. A second
        dump dir of the same job gets C(<name>-2), and so on.
    type: str
    required: true
  staging_dir:
    description:
      - Where the copies go. It is created with mode C(0700) and must not exist as a symlink. It needs as much free
        space as the dumps.
    type: path
    default: /var/tmp/neuron-core-dump-pull
  state:
    description:
      - V(present) stages, V(absent) removes O(staging_dir).
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - neuron_ops.core_dump.attributes
attributes:
  check_mode:
    description: Lists and hashes the files and returns the manifests. It copies and creates nothing.
  diff_mode:
    support: none
    description: Returns no diff; the manifests list what was staged.
seealso:
  - module: neuron_ops.core_dump.core_dump_job_fetch
"""

EXAMPLES = r"""
- name: Stage this host's dump dirs of the job
  neuron_ops.core_dump.core_dump_job_stage:
    name: "{{ inventory_hostname }}"
    paths: "{{ info.dumps | selectattr('job_key', '==', job) | map(attribute='path') | list }}"
  register: staged

- name: Remove the staged copies
  neuron_ops.core_dump.core_dump_job_stage:
    name: "{{ inventory_hostname }}"
    state: absent
"""

RETURN = r"""
staging_dir:
  description: The staging directory.
  returned: always
  type: str
manifests:
  description:
    - One manifest per dump dir, in the uploader's manifest format (C(schema), C(hostname), C(dump_dir), C(files),
      C(skipped)). Each file has C(name), C(name_b64) when the name is not plain UTF-8, C(size), C(sha256) and
      C(key), its staged name below RV(staging_dir).
    - C(name) is the manifest's name, and C(<name>-manifest.json) its file on the controller.
  returned: state=present
  type: list
  elements: dict
files:
  description: Staged (or, in check mode, listed) files of all dump dirs.
  returned: state=present
  type: list
  elements: dict
  contains:
    key:
      description: Name below RV(staging_dir).
      type: str
    manifest:
      description: The C(name) of the manifest it belongs to.
      type: str
"""

import base64  # noqa: E402
import contextlib  # noqa: E402
import errno  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import stat  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

SCHEMA = "neuron-core-dump/manifest/pull-v1"
MANIFEST_SUFFIX = "-manifest.json"
CHUNK = 1024 * 1024
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _describe(raw):
    text = raw.decode("utf-8", "backslashreplace")
    shown = "".join(c if " " <= c != "\x7f" else "\\x%02x" % ord(c) for c in text)
    item = {"name": shown}
    if shown.encode("utf-8") != raw:
        item["name_b64"] = base64.b64encode(raw).decode("ascii")
    return item


def _open_staging(path, create):
    if create:
        # an existing one is checked below: ours, not a link, not readable by others
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    fd = os.open(path, DIR_FLAGS)
    info = os.fstat(fd)
    if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
        os.close(fd)
        raise OSError(errno.EPERM, "not ours or readable by others", path)
    return fd


def _copy(src_fd, staging_fd, key):
    """Copy from an open descriptor to staging/<key>; the sha256 of exactly what was copied."""
    digest = hashlib.sha256()
    size = 0
    out = None
    if staging_fd is not None:
        out = os.open(
            key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=staging_fd
        )
    try:
        while True:
            chunk = os.read(src_fd, CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
            if out is not None:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
    finally:
        if out is not None:
            os.close(out)
    return size, digest.hexdigest()


def _stage_dir(path, number, name, staging_fd):
    manifest_name = name if number == 0 else "%s-%d" % (name, number + 1)
    document = {
        "schema": SCHEMA,
        "name": manifest_name,
        "hostname": socket.gethostname(),
        "dump_dir": path,
        "files": [],
        "skipped": [],
    }
    dir_fd = os.open(path, DIR_FLAGS)
    try:
        for index, raw in enumerate(sorted(os.fsencode(entry) for entry in os.listdir(dir_fd))):
            if raw.startswith(b".") or raw.endswith(MANIFEST_SUFFIX.encode()):
                document["skipped"].append(dict(_describe(raw), reason="hidden or reserved name (as the uploader)"))
                continue
            try:
                fd = os.open(raw, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
            except OSError as exc:
                reason = "symlink: not followed" if exc.errno == errno.ELOOP else os.strerror(exc.errno)
                document["skipped"].append(dict(_describe(raw), reason=reason))
                continue
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    document["skipped"].append(dict(_describe(raw), reason="not a regular file"))
                    continue
                key = "%s~%d" % (manifest_name, index)
                size, digest = _copy(fd, staging_fd, key)
            finally:
                os.close(fd)
            document["files"].append(dict(_describe(raw), key=key, size=size, sha256=digest))
    finally:
        os.close(dir_fd)
    return document


def main():
    module = AnsibleModule(
        argument_spec={
            "paths": {"type": "list", "elements": "path", "default": []},
            "name": {"type": "str", "required": True},
            "staging_dir": {"type": "path", "default": "/var/tmp/neuron-core-dump-pull"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        supports_check_mode=True,
    )
    staging = module.params["staging_dir"]
    name = module.params["name"]
    if not name or "/" in name or name.startswith(".") or any(ord(c) < 33 for c in name):
        module.fail_json(msg="name %r must be one plain path component" % name)
    if not os.path.isabs(staging) or os.path.normpath(staging) in ("/", "/var", "/var/tmp", "/tmp"):
        module.fail_json(msg="staging_dir %r must be an absolute path of its own" % staging)
    if module.params["state"] == "absent":
        exists = os.path.lexists(staging)
        if exists and not module.check_mode:
            if os.path.islink(staging) or not os.path.isdir(staging):
                os.unlink(staging)
            else:
                shutil.rmtree(staging)
        module.exit_json(changed=exists, staging_dir=staging)
    staging_fd = None
    try:
        if not module.check_mode:
            staging_fd = _open_staging(staging, create=True)
        manifests = []
        for number, path in enumerate(module.params["paths"]):
            try:
                manifests.append(_stage_dir(path, number, name, staging_fd))
            except OSError as exc:
                module.fail_json(msg="cannot read dump dir %s: %s (a symlink is never followed)" % (path, exc.strerror))
    except OSError as exc:
        module.fail_json(msg="staging_dir %s: %s" % (staging, exc.strerror))
    finally:
        if staging_fd is not None:
            os.close(staging_fd)
    files = [{"key": f["key"], "manifest": m["name"]} for m in manifests for f in m["files"]]
    module.exit_json(
        changed=bool(files) and not module.check_mode, staging_dir=staging, manifests=manifests, files=files
    )


if __name__ == "__main__":
    main()
