# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""core_dump_program: the controller half. Reads the files, asks the host what differs, sends only that.

A converged host costs one module call (sha256, mode and owner compared on the host); a
host that needs files gets one uncompressed tar of just those files and a second call
that installs them (the module checks each member's sha256 again before the rename).
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.action import ActionBase
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import filewriter

MODULE = "neuron_ops.core_dump.core_dump_program"


def _archive(blobs):
    """An uncompressed tar of {index: bytes}, members named by index, fixed metadata."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for index, data in sorted(blobs.items()):
            info = tarfile.TarInfo(str(index))
            info.size = len(data)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _after(data, mode, text):
    """What the module's diff shows for a file (filewriter's form): its text, or its sha256, mode and owner."""
    shown = filewriter.diff_text(data) if text else None
    return (
        shown if shown is not None else filewriter.summary_line(hashlib.sha256(data).hexdigest(), mode, "root", "root")
    )


def _dest(spec):
    """``dest``, or ``dest`` + the source's name when ``dest`` ends with / (as ansible.builtin.copy does)."""
    dest = spec.get("dest")
    if isinstance(dest, str) and dest.endswith("/") and spec.get("src"):
        return dest + os.path.basename(spec["src"])
    return dest


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def _read(self, spec):
        if (spec.get("src") is None) == (spec.get("content") is None):
            raise AnsibleActionFail("%s: give exactly one of src and content" % spec.get("dest"))
        if spec.get("content") is not None:
            return to_bytes(spec["content"], errors="surrogate_or_strict")
        try:
            source = self._find_needle("files", spec["src"])
            with open(source, "rb") as handle:
                return handle.read()
        except Exception as exc:  # AnsibleError from _find_needle, or OSError from the read
            raise AnsibleActionFail("%s: cannot read %s: %s" % (spec.get("dest"), spec["src"], exc)) from None

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        files = self._task.args.get("files")
        if not isinstance(files, list) or not all(isinstance(spec, dict) for spec in files):
            raise AnsibleActionFail("files must be a list of dicts with dest, mode and src or content")
        blobs = [self._read(spec) for spec in files]
        module_files = [
            {"dest": _dest(spec), "mode": spec.get("mode"), "sha256": hashlib.sha256(data).hexdigest()}
            for spec, data in zip(files, blobs)
        ]
        args = {key: value for key, value in self._task.args.items() if key not in ("files", "archive")}
        args["files"] = module_files
        try:
            answer = self._execute_module(MODULE, module_args=args, task_vars=task_vars)
            if answer.get("needs_archive") and not answer.get("failed") and not self._task.check_mode:
                needed = {c["path"] for c in answer["changes"] if c["action"] in ("create", "update")}
                wanted = {index: blobs[index] for index, spec in enumerate(module_files) if spec["dest"] in needed}
                if not self._connection._shell.tmpdir:
                    self._make_tmp_path()
                remote = self._connection._shell.join_path(self._connection._shell.tmpdir, "program.tar")
                self._transfer_data(remote, _archive(wanted))
                self._fixup_perms2((self._connection._shell.tmpdir, remote))
                answer = self._execute_module(MODULE, module_args=dict(args, archive=remote), task_vars=task_vars)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        answer.pop("needs_archive", None)
        by_path = {spec["dest"]: data for spec, data in zip(module_files, blobs)}
        for diff, change in zip(answer.get("diff") or [], answer.get("changes") or []):
            data = by_path.get(change["path"])
            if change["action"] == "remove":
                diff["after"] = ""
            elif data is None:
                diff["after"] = filewriter.summary_line("directory", change["mode"], "root", "root")
            else:
                diff["after"] = _after(data, change["mode"], change["action"] != "attributes")
        result.update(answer)
        return result
