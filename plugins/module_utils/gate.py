# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runtime's own decision: will a process with this environment write dumps?

libnrt (``core_dumps_are_enabled()``, runtime-contract.md section 2) dumps iff
the local directory or the S3 prefix is non-empty after defaults AND
``access(hook, X_OK)`` succeeds for the workload's user. Defaults: an unset
local directory becomes ``/tmp/neuron-core-dump/dt-%d-cid-%c``; an empty one
also falls back to that default when an S3 prefix is set (the runtime always
stages locally first). Both empty (or local empty and S3 unset) disables.
"""

from __future__ import annotations

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract, patterns

ENABLED = "enabled"
DISABLED = "disabled"


def evaluate(local, s3, hook_executable):
    """Effective state for one environment.

    ``local`` and ``s3`` are the raw variable values, ``None`` when unset.
    Returns a dict: state, reason, local_dir and s3_prefix (effective patterns,
    None when not in use), local_base (directory every dump lands under).
    """
    s3_effective = s3 or None
    if local is None:
        local_effective = contract.RUNTIME_DEFAULT_LOCAL_DIR
        local_note = "local directory unset: runtime default"
    elif local == "" and s3_effective:
        local_effective = contract.RUNTIME_DEFAULT_LOCAL_DIR
        local_note = "local directory empty but S3 prefix set: runtime stages in its default directory"
    else:
        local_effective = local or None
        local_note = None

    result = {
        "state": DISABLED,
        "reason": "",
        "local_dir": local_effective,
        "s3_prefix": s3_effective,
        "local_base": patterns.storage_root(local_effective)[0] if local_effective else None,
    }
    if not local_effective and not s3_effective:
        result["reason"] = "both variables empty (the documented way to disable)"
        result["local_dir"] = None
        return result
    if not hook_executable:
        result["reason"] = "hook is not executable by the workload user"
        return result
    result["state"] = ENABLED
    result["reason"] = local_note or "variables set and hook executable"
    return result
