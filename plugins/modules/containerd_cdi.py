#!/usr/bin/python
# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: containerd_cdi
short_description: Make containerd's CRI plugin read CDI specs (C(enable_cdi = true))
version_added: 0.1.0
description:
  - containerd 1.7 reads CDI specs (such as the one M(neuron_ops.core_dump.core_dump) writes for its V(cdi) target)
    only with C(enable_cdi = true) in the C([plugins."io.containerd.grpc.v1.cri"]) table of
    C(/etc/containerd/config.toml). containerd 2.x reads them by default.
  - The file is edited in place, one line, everything else kept byte for byte. A drop-in through C(imports) is not
    used, because containerd replaces a plugin's whole table with an imported one, which would drop the node's
    other CRI settings.
  - containerd 1.7 (config C(version = 2)) gets C(enable_cdi = true) in the CRI table (an existing
    C(enable_cdi = false) line is turned to true, otherwise the line is inserted right after the table's header,
    or the table is added at the end). With no file, a file holding only C(version = 2) and that table is
    written; containerd decodes the table over its defaults, so nothing else changes.
  - containerd 2.x is changed only where the file sets C(enable_cdi = false) in a CRI table; that line is turned
    to true.
  - When the CRI table lists C(cdi_spec_dirs) without O(cdi_spec_dir), the directory is added to that list (on
    one line; a list spanning several lines is refused). Without C(cdi_spec_dirs) containerd reads C(/etc/cdi) and
    C(/var/run/cdi).
  - The module never turns CDI off. Other CDI users (GPU or Neuron device plugins) may rely on it.
  - What it cannot edit with certainty is refused with a message and left unchanged, for example C(enable_cdi)
    set through a dotted key outside the CRI table, a table defined twice, the CRI table given as an inline
    table, config C(version = 1) or a file without C(version), a line that does not parse, a symlink, anything
    but a regular file, or a file not owned by root.
  - The module does not restart containerd. It returns RV(service_active) so a handler can restart it when the
    file changed. Restarting containerd leaves running containers running (each has its own shim).
  - When no C(containerd) binary is found, nothing is changed and RV(skipped_reason) says so.
author:
  - neuron_ops developers (@neuron-ops)
options:
  cdi_spec_dir:
    description:
      - The CDI spec directory in use (the V(cdi) target's O(neuron_ops.core_dump.core_dump#module:cdi_spec_dir)).
        Added to C(cdi_spec_dirs) when that key exists and does not list it.
    type: str
    choices: [/etc/cdi, /var/run/cdi]
    default: /etc/cdi
requirements:
  - Python 3.9 or later on the managed host (the module uses the standard library only)
extends_documentation_fragment:
  - neuron_ops.core_dump.attributes
attributes:
  check_mode:
    description: Predicts the exact new file without writing it.
  diff_mode:
    support: full
    description: The file before and after.
notes:
  - On EKS Amazon Linux 2023 nodes, C(nodeadm) writes C(/etc/containerd/config.toml) at every boot and sets
    C(enable_cdi = true) itself for kubelet 1.32 and later. For older kubelets put C(enable_cdi = true) into the
    NodeConfig (C(spec.containerd.config)) so it survives reboots; see C(docs/containers.md).
seealso:
  - module: neuron_ops.core_dump.core_dump
  - module: neuron_ops.core_dump.core_dump_info
"""

EXAMPLES = r"""
- name: Let containerd 1.7 read CDI specs
  neuron_ops.core_dump.containerd_cdi:
  register: cdi

- name: Restart containerd when the file changed (running containers keep running)
  ansible.builtin.systemd_service:
    name: containerd.service
    state: restarted
  when: cdi.changed and cdi.service_active
"""

RETURN = r"""
path:
  description: The file read (and written).
  returned: always
  type: str
  sample: /etc/containerd/config.toml
containerd_version:
  description: The version from C(containerd --version), or null.
  returned: always
  type: str
  sample: 1.7.27
cdi:
  description: Whether containerd reads CDI specs with the file as it is after the run (in check mode, as it would be).
  returned: always
  type: bool
  sample: true
cdi_reason:
  description: Why RV(cdi) has its value.
  returned: always
  type: str
  sample: plugins.io.containerd.grpc.v1.cri enable_cdi = true in /etc/containerd/config.toml
change:
  description: What was (or would be) changed, or null.
  returned: always
  type: str
  sample: enable_cdi = true inserted after [plugins."io.containerd.grpc.v1.cri"]
service_active:
  description: Whether C(containerd.service) is active (C(systemctl is-active)); a restart applies the change.
  returned: always
  type: bool
  sample: true
skipped_reason:
  description: Why nothing was looked at (no containerd binary), or null.
  returned: always
  type: str
  sample: null
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import (  # noqa: E402
    container_runtimes,
    containerd_config,
    filewriter,
    paths,
)


def service_active(module):
    systemctl = module.get_bin_path("systemctl")
    if not systemctl or not os.path.isdir(paths.SYSTEMD_RUN_DIR):
        return False
    rc, _out, _err = module.run_command([systemctl, "is-active", "--quiet", "containerd.service"])
    return rc == 0


def main():
    module = AnsibleModule(
        argument_spec=dict(cdi_spec_dir=dict(type="str", choices=["/etc/cdi", "/var/run/cdi"], default="/etc/cdi")),
        supports_check_mode=True,
    )
    path = paths.CONTAINERD_CONFIG
    result = {
        "changed": False,
        "path": container_runtimes.CONTAINERD_CONFIG,
        "containerd_version": None,
        "cdi": None,
        "cdi_reason": None,
        "change": None,
        "service_active": False,
        "skipped_reason": None,
    }
    binary = module.get_bin_path("containerd")
    if not binary:
        result["skipped_reason"] = "no containerd binary on PATH"
        module.warn("containerd_cdi: %s; nothing changed" % result["skipped_reason"])
        module.exit_json(**result)
    rc, out, err = module.run_command([binary, "--version"], environ_update={"LC_ALL": "C"})
    version = container_runtimes.parse_version(out) if rc == 0 else None
    result["containerd_version"] = container_runtimes.version_text(version)
    result["service_active"] = service_active(module)
    try:
        before = containerd_config.read(path)
        after, why = containerd_config.plan(before, version, module.params["cdi_spec_dir"])
    except containerd_config.Refused as exc:
        detail = "" if rc == 0 else " (%s)" % (err or out).strip()[:200]
        module.fail_json(msg="%s not changed: %s%s" % (result["path"], exc, detail), **result)
    before_bytes = None if before is None else before.encode()
    # No plan (None) means the file stays as it is, never that it goes away.
    change = filewriter.FileChange(
        "containerd_cdi", path, before_bytes, before_bytes if after is None else after.encode()
    )
    if after is not None:
        result["change"] = why
    result["changed"] = change.changed
    if change.changed and module._diff:
        diff = change.diff()
        diff["before_header"] = diff["after_header"] = result["path"]
        result["diff"] = diff
    effective = after if after is not None else before
    result["cdi"], result["cdi_reason"] = container_runtimes.containerd_cdi(version, effective)
    if change.changed and not module.check_mode:
        try:
            change.apply(module)
        except OSError as exc:
            module.fail_json(msg="cannot write %s: %s" % (result["path"], exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
