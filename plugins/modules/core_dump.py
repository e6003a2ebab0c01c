#!/usr/bin/python
# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: core_dump
short_description: Turn AWS Neuron runtime core dumps on or off everywhere a workload can start
version_added: 0.1.0
description:
  - The Neuron runtime (C(libnrt)) reads C(NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY) and C(NEURON_RT_S3_CORE_DUMP_PREFIX)
    once, when a workload process starts, and runs C(/opt/aws/neuron/bin/neuron-dump) when an API call fails.
  - This module is the one writer of those two variables. It sets them in every target a workload can start from
    (PAM sessions, login shells, the systemd manager, named services), and can take the hook's execute bits away.
  - C(/etc/environment) is edited in place. The module owns the two variables in it. Any line that assigns one of
    them is replaced by a managed block, which starts with a marker comment line. Every other byte of the file is
    kept.
  - It writes C(/etc/profile.d/neuron-core-dump.sh), C(/etc/systemd/system.conf.d/50-neuron-core-dump.conf)
    (C([Manager]) C(DefaultEnvironment=)) and C(/etc/systemd/system/<unit>.d/50-neuron-core-dump.conf)
    (C([Service]) C(Environment=)). In both systemd files a C(%) is written as C(%%), because systemd expands
    specifiers there.
  - Every value is checked before anything is written. If a value breaks a rule, the module fails, names the option
    and the rule, and writes nothing.
  - Changes reach only processes started afterwards. Running workloads keep their old settings until they restart;
    use M(neuron_ops.core_dump.core_dump_info) to list them.
author:
  - neuron_ops developers (@neuron-ops)
options:
  state:
    description:
      - V(enabled) sets O(local_dir), and O(s3_prefix) when given, in every target.
      - V(disabled) sets both variables to the empty string in every target, the method the Neuron documentation
        gives. Use this rather than V(absent) to turn dumps off. With V(absent), the runtime falls back to its
        default C(/tmp/neuron-core-dump/dt-%d-cid-%c) and dumps stay on.
      - V(absent) removes everything the module manages in the chosen targets and gives the hook back the execute
        bits the module took. For the V(units) target, this means the drop-in of every unit that has one, not only
        those in O(units).
    type: str
    choices: [enabled, disabled, absent]
    default: enabled
  local_dir:
    description:
      - Directory pattern for C(NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY) with O(state=enabled).
      - Must be an absolute path without C(..) components, with a fixed base directory before the first variable.
      - The runtime expands C(%d) (date-time), C(%c) (cluster id), C(%p) (pid), C(%t) (tid), C(%l) (log id) and
        C(%i) (instance id). Any other C(%X) is rejected, because the runtime would silently write a literal C(%)
        and drop the C(X).
      - Must contain C(%d) and C(%c) unless O(allow_non_unique=true). All ranks of one collectives run agree on
        these two values, so each failure gets one shared directory.
      - Only printable ASCII is allowed, without whitespace, quotes, dollar signs, backslashes, backticks or hash
        signs. None of the target formats can carry those characters unchanged.
      - When it lies outside the host program's C(dump_roots) (in C(/etc/neuron-core-dump/config.json)), the
        module warns. The hook writes no record there and nothing there is uploaded.
      - Ignored with O(state=disabled) and O(state=absent).
    type: str
    default: /var/lib/neuron-core-dump/dumps/dt-%d-cid-%c
  s3_prefix:
    description:
      - Value of C(NEURON_RT_S3_CORE_DUMP_PREFIX) with O(state=enabled), for example C(s3://my-bucket/neuron/%d-%c).
      - Must use the C(s3://) scheme. The bucket must follow the S3 bucket naming rules (3 to 63 characters;
        lowercase letters, digits, dots and hyphens; starting and ending with a letter or digit; no C(..); not an IP
        address; no reserved prefix or suffix such as C(xn--) or C(-s3alias)).
      - The key part may use the same variables as O(local_dir), and the same uniqueness rule applies.
      - It must be at least as unique as O(local_dir). Every variable used in O(local_dir) must also appear here,
        otherwise several local dump directories would map to one S3 prefix, and equal file names and their
        manifests would overwrite each other there. For example, O(local_dir=/d/%d-%c-%p) with
        O(s3_prefix=s3://b/%d-%c) is refused, naming the missing C(%p). O(allow_non_unique) does not waive this
        rule.
      - The reverse is allowed. A variable only here (for example C(%p) in the prefix but not in O(local_dir))
        means one local directory is reached by calls with several prefixes. Each prefix then gets its own
        complete upload of that same directory, so nothing is lost, and the same files appear under each prefix.
      - When the host's uploader restricts where it writes (C(s3.allowed_prefixes) or C(s3.allowed_buckets) in
        C(/etc/neuron-core-dump/config.json), set by the M(neuron_ops.core_dump.neuron_dump) role from this
        prefix by default), a prefix outside them draws a warning. Dumps under it would stay local, counted and
        reported, and would not be uploaded.
      - When this is not given (or empty), the variable is not set in any target.
      - The runtime itself never uploads. Uploading is done by the C(neuron-dump) hook.
    type: str
  allow_non_unique:
    description:
      - Accept O(local_dir) and O(s3_prefix) without C(%d) and C(%c). Dumps of different failures then share, or
        overwrite, one directory.
    type: bool
    default: false
  targets:
    description:
      - Where to write.
      - V(environment) is C(/etc/environment), read by C(pam_env) at every PAM session (ssh, su, login).
      - V(profile) is C(/etc/profile.d/neuron-core-dump.sh), read by login shells.
      - V(systemd_manager) is C(DefaultEnvironment=) for every system service started afterwards.
      - V(units) is one C(Environment=) drop-in per service in O(units).
      - V(cdi) is the CDI spec C(neuron-ops.io/core-dump=default) in O(cdi_spec_dir); V(podman) is
        C(/etc/containers/containers.conf.d/50-neuron-core-dump.conf) for every new Podman container. Both give
        containers a directory in the bind-mounted O(container_dump_dir) and an empty S3 prefix (the host uploads).
        See C(docs/containers.md).
      - The default is V(environment), V(profile) and V(systemd_manager), plus V(units) when O(units) is given,
        plus V(cdi) and V(podman) when our file for them exists already (then they keep the spec directory and area
        they use, so a plain enable or disable keeps containers in step with the host). With O(state=absent), the
        default is all six.
    type: list
    elements: str
    choices: [environment, profile, systemd_manager, units, cdi, podman]
  units:
    description:
      - Services that get their own C(Environment=) drop-in. This matters for services that reset or override the
        environment, or that must be covered even if the manager drop-in is not applied.
      - A name without a suffix gets C(.service). Only C(.service) units are accepted. A template (C(name@.service))
        covers all of its instances.
    type: list
    elements: str
  hook:
    description:
      - V(disable) removes every execute bit from C(/opt/aws/neuron/bin/neuron-dump). This turns dumps off for
        every process on the host at its next failure, with no restart needed (containers have their own copy). It
        is allowed only with O(state=disabled).
      - The original mode is recorded in C(/var/lib/neuron-core-dump/core-dump-hook-state.json).
        O(state=enabled) and O(state=absent) restore exactly that mode, but only if the file still has the mode the
        module left it with. If a package upgrade or another tool changed the file since, the module leaves it as
        it is.
      - V(keep) leaves the hook's mode alone, apart from that restore.
    type: str
    choices: [keep, disable]
    default: keep
  apply:
    description:
      - After a change to the manager drop-in, run C(systemctl daemon-reexec). After a change to a unit drop-in
        only, run C(systemctl daemon-reload). Only then do services started afterwards see the new values.
        C(daemon-reexec) re-reads C(system.conf.d) on every systemd version, while C(daemon-reload) does so only on
        newer ones.
      - Skipped, with a warning, when systemd is not the running init (no C(/run/systemd/system)).
    type: bool
    default: true
  cdi_spec_dir:
    description:
      - Directory of the CDI spec for the V(cdi) target. Ours in the other directory is removed.
      - V(/var/run/cdi) does not survive a reboot.
    type: str
    choices: [/etc/cdi, /var/run/cdi]
    default: /etc/cdi
  container_dump_dir:
    description:
      - Host directory (mode 0711) whose C(shared) subdirectory (mode 1733) the V(cdi) and V(podman) targets
        bind-mount into containers. Created when a container target is enabled; never removed, as it may hold dumps.
      - Must be absolute and normalized, must not overlap the host's dump directory, must not be under a temporary
        or virtual file system, and must not resolve through a symlink.
    type: str
    default: /var/lib/neuron-core-dump/containers
requirements:
  - Python 3.9 or later on the managed host (the module uses the standard library only)
extends_documentation_fragment:
  - neuron_ops.core_dump.attributes
attributes:
  check_mode:
    description: Predicts every file change and command without writing or running anything.
  diff_mode:
    support: full
    description: One before/after entry, with headers, for each changed file and for the hook's mode.
notes:
  - Processes inside containers get neither the host files nor the host's hook. Pass their environment through the
    container spec.
  - To list running workloads that still use the old values, use M(neuron_ops.core_dump.core_dump_info).
seealso:
  - module: neuron_ops.core_dump.core_dump_info
"""

EXAMPLES = r"""
- name: Dumps on, staged locally, uploaded by the hook to S3
  neuron_ops.core_dump.core_dump:
    state: enabled
    local_dir: /var/lib/neuron-core-dump/dumps/dt-%d-cid-%c
    s3_prefix: s3://example-neuron-dumps/{{ inventory_hostname }}/%d-%c

- name: Also cover two services with their own drop-ins
  neuron_ops.core_dump.core_dump:
    state: enabled
    units:
      - vllm
      - triton@.service

- name: Dumps off everywhere, including processes already running (hook not executable)
  neuron_ops.core_dump.core_dump:
    state: disabled
    hook: disable

- name: Back to the vendor defaults (the runtime's own /tmp default applies again)
  neuron_ops.core_dump.core_dump:
    state: absent

- name: Preview what would change
  neuron_ops.core_dump.core_dump:
    state: disabled
  check_mode: true
  diff: true
  register: preview
"""

RETURN = r"""
changed_targets:
  description:
    - Targets whose files changed (or would change in check mode). V(hook) is listed when the hook's mode changed.
  returned: always
  type: list
  elements: str
  sample: [environment, systemd_manager, hook]
files:
  description: Paths created, rewritten or removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/etc/environment, /etc/systemd/system.conf.d/50-neuron-core-dump.conf]
restart_required:
  description:
    - True when a variable changed. Workloads that are already running keep the values they started with until
      they restart. A change to the hook's mode takes effect without a restart.
  returned: always
  type: bool
  sample: true
commands:
  description:
    - The C(systemctl) commands run to apply the change. In check mode, the commands that would run.
  returned: always
  type: list
  elements: str
  sample: [systemctl daemon-reexec]
apply_skipped:
  description: Why a needed C(systemctl) command was not run, or null.
  returned: always
  type: str
  sample: systemd is not the running init (no /run/systemd/system)
values:
  description:
    - The variables as written to every target. A variable that is not listed is left unset. Null with
      O(state=absent).
  returned: always
  type: dict
  sample: {NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY: /var/lib/neuron-core-dump/dumps/dt-%d-cid-%c}
manager_percent_escaped:
  description:
    - Whether C(%) was written as C(%%) in C(DefaultEnvironment=). This depends on whether this systemd version
      expands specifiers there.
  returned: always
  type: bool
  sample: true
"""

import json  # noqa: E402
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import (  # noqa: E402
    contract,
    filewriter,
    installed_hook,
    paths,
    s3_prefix,
    settings,
    systemd_dropin,
    targets,
    unit_names,
)


def argument_spec():
    return dict(
        state=dict(type="str", choices=["enabled", "disabled", "absent"], default="enabled"),
        local_dir=dict(type="str", default=contract.DEFAULT_LOCAL_DIR),
        s3_prefix=dict(type="str"),
        allow_non_unique=dict(type="bool", default=False),
        targets=dict(type="list", elements="str", choices=list(targets.ALL)),
        units=dict(type="list", elements="str"),
        hook=dict(type="str", choices=["keep", "disable"], default="keep"),
        apply=dict(type="bool", default=True),
        cdi_spec_dir=dict(type="str", choices=["/etc/cdi", "/var/run/cdi"], default="/etc/cdi"),
        container_dump_dir=dict(type="str", default="/var/lib/neuron-core-dump/containers"),
    )


def systemd_version(module):
    systemctl = module.get_bin_path("systemctl")
    if not systemctl:
        return None
    rc, out, _err = module.run_command([systemctl, "--version"], environ_update={"LC_ALL": "C"})
    return systemd_dropin.parse_version(out) if rc == 0 else None


def validate(module):
    """(values, chosen targets, units) or fail_json with every broken rule."""
    params = module.params
    state = params["state"]
    problems = []
    units = []
    for name in params["units"] or []:
        found = unit_names.problems(name)
        problems.extend(found)
        if not found:
            full = unit_names.normalize(name)
            if full not in units:
                units.append(full)
    chosen = params["targets"]
    if chosen is None:
        chosen = list(targets.ALL) if state == "absent" else targets.default_targets(units)
    elif targets.UNITS in chosen and not units and state != "absent":
        problems.append("targets: 'units' needs at least one service in units")
    elif units and targets.UNITS not in chosen:
        problems.append("units: given, but targets does not include 'units'; add it or drop units")
    if params["hook"] == "disable" and state != "disabled":
        problems.append("hook: 'disable' is only allowed with state=disabled (state=%s restores the hook)" % state)
    values, found = settings.desired_values(state, params["local_dir"], params["s3_prefix"], params["allow_non_unique"])
    problems.extend(found)
    spec_dir, area = targets.use_container_paths(
        params["cdi_spec_dir"], params["container_dump_dir"], derive=params["targets"] is None
    )
    problems.extend(targets.container_problems(chosen, state, spec_dir, area, params["local_dir"]))
    if problems:
        module.fail_json(msg="invalid arguments, nothing written: " + "; ".join(problems), problems=problems)
    if state == "enabled":
        for warning in settings.local_dir_warnings(params["local_dir"]):
            module.warn(warning)
        warn_about_the_uploader(module, params["local_dir"], params["s3_prefix"])
    return values, chosen, units


def read_uploader_config(path):
    """The host program's config as a dict, or None when there is none (or it is not readable JSON)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None  # no uploader here (yet), or a config check-config would refuse anyway
    return data if isinstance(data, dict) else None


def warn_about_the_uploader(module, local_dir, prefix):
    """Warnings, not failures: in check mode the neuron_dump role may be about to change the config."""
    config = read_uploader_config(paths.UPLOADER_CONFIG)
    if config is None:
        return
    roots = config.get("dump_roots")
    if isinstance(roots, list) and roots and not settings.local_dir_below_roots(local_dir, roots):
        module.warn(
            "local_dir %r is outside the uploader's dump_roots %s (%s): the hook writes no record there and "
            "nothing there is uploaded" % (local_dir, roots, paths.UPLOADER_CONFIG)
        )
    s3 = config.get("s3") if isinstance(config.get("s3"), dict) else {}
    buckets, prefixes = list(s3.get("allowed_buckets") or []), list(s3.get("allowed_prefixes") or [])
    if prefix and not s3_prefix.allowed_by(prefix, buckets, prefixes):
        module.warn(
            "s3_prefix %r is outside what the uploader may write to (s3.allowed_buckets %s, s3.allowed_prefixes %s "
            "in %s): dumps under it stay local and are reported as refused; widen neuron_dump_s3_allowed_prefixes "
            "and run the neuron_dump role first" % (prefix, buckets, prefixes, paths.UPLOADER_CONFIG)
        )


def plan_hook(module):
    params = module.params
    if params["hook"] == "disable":
        change = installed_hook.plan_disable(paths.HOOK, paths.HOOK_STATE)
        if change is None:
            module.warn("hook=disable: %s does not exist; nothing to disable" % paths.HOOK)
        return change
    if params["state"] in ("enabled", "absent"):
        change = installed_hook.plan_restore(paths.HOOK, paths.HOOK_STATE)
        if change is not None and change.note:
            module.warn("hook restore: %s" % change.note)
        return change
    return None


def apply_systemd(module, manager_changed, units_changed, result):
    """Run (or, in check mode, list) the systemctl command that makes new services see the change."""
    if not module.params["apply"] or not (manager_changed or units_changed):
        return
    # daemon-reexec re-reads system.conf(.d) on every systemd (daemon-reload only does on newer ones, roughly
    # v240+) and, like daemon-reload, reloads all unit files; so one command covers both kinds of change.
    command = ["systemctl", "daemon-reexec" if manager_changed else "daemon-reload"]
    if not os.path.isdir(paths.SYSTEMD_RUN_DIR):
        result["apply_skipped"] = "systemd is not the running init (no %s)" % paths.SYSTEMD_RUN_DIR
        module.warn(
            "%s not run: %s; the new values apply from the next boot" % (" ".join(command), result["apply_skipped"])
        )
        return
    result["commands"].append(" ".join(command))
    if module.check_mode:
        return
    systemctl = module.get_bin_path("systemctl", required=True)
    rc, out, err = module.run_command([systemctl, *command[1:]], environ_update={"LC_ALL": "C"})
    if rc != 0:
        module.fail_json(
            msg="%s failed after the files were written: %s" % (" ".join(command), err.strip() or out),
            rc=rc,
            stdout=out,
            stderr=err,
            cmd=" ".join(command),
            **result,
        )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    values, chosen, units = validate(module)

    version = systemd_version(module) if targets.SYSTEMD_MANAGER in chosen else None
    expands = systemd_dropin.manager_expands_specifiers(version)
    changes = [c for c in targets.plan(chosen, values, units, expands) if c.changed]
    hook_change = plan_hook(module)

    result = {
        "changed": False,
        "changed_targets": [],
        "files": [],
        "restart_required": False,
        "commands": [],
        "apply_skipped": None,
        "values": values,
        "manager_percent_escaped": expands,
        "diff": [],
    }
    for change in changes:
        if change.target not in result["changed_targets"]:
            result["changed_targets"].append(change.target)
        result["files"].append(change.path)
        result["diff"].append(change.diff())
    if hook_change is not None and hook_change.changed:
        result["changed_targets"].append("hook")
        result["files"].append(paths.HOOK)
        result["diff"].append(hook_change.diff())
    result["changed"] = bool(result["files"])
    result["restart_required"] = bool(changes)

    if not module.check_mode:
        for change in changes:
            try:
                change.apply(module)
                if change.after is None and change.target == targets.UNITS:
                    # An empty <unit>.d directory is ours to clean; anything else in it stays.
                    filewriter.remove_empty_directory(os.path.dirname(change.path))
            except OSError as exc:
                module.fail_json(msg="cannot write %s: %s" % (change.path, exc), **result)
        if hook_change is not None:
            try:
                hook_change.apply()
            except OSError as exc:
                module.fail_json(msg="cannot change the mode of %s: %s" % (paths.HOOK, exc), **result)

    apply_systemd(
        module,
        manager_changed=any(c.target == targets.SYSTEMD_MANAGER for c in changes),
        units_changed=any(c.target == targets.UNITS for c in changes),
        result=result,
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
