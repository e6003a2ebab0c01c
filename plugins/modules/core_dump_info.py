#!/usr/bin/python
# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: core_dump_info
short_description: Report whether a host captures AWS Neuron runtime core dumps, and where they go
version_added: 0.1.0
description:
  - Read-only check of one host. It reports, as plain data, what a new workload would do for each way a workload
    can start, using the runtime's own rules.
  - The rules are that dumps are on when the local directory or the S3 prefix is non-empty after defaults, and
    C(/opt/aws/neuron/bin/neuron-dump) is executable by the workload user. An unset local directory means the
    runtime default C(/tmp/neuron-core-dump/dt-%d-cid-%c). Both variables empty means off.
  - The ways a workload can start, called contexts, are C(login_shell) (a real login shell is run), C(pam_session)
    (C(/etc/environment) as C(pam_env) reads it), C(systemd_service) (the manager environment) and C(unit:<name>)
    for each named or managed service. With O(workload_user), the module also runs C(su -l) as that user
    (C(su_login:<user>)).
  - It also reports drift between contexts, between the managed files, and between files and what systemd uses,
    and against O(expect) when given. Other reports cover the hook's identity, who may execute the hook, the vendor
    C(.distrib) file and its package version, running workloads that started with other values, dump storage, the
    spool and uploader status of the C(neuron-core-dump) host program, and an optional end-to-end check of the
    upload path (O(s3_probe)).
  - It lists the dumps on the host as data (RV(dumps)), each with its job, NRT error, NEFF, processes, cores, origin
    and upload state, from the C(neuron-core-dump) host program.
  - The module changes nothing on the host. Only O(s3_probe=true) runs the host program's own self-test, which
    writes and removes a scratch dump and one S3 object; in check mode it is skipped.
author:
  - neuron_ops developers (@neuron-ops)
options:
  units:
    description:
      - Services to evaluate as contexts. Every service that has a drop-in from M(neuron_ops.core_dump.core_dump) is
        always evaluated as well.
      - A name without a suffix gets C(.service).
    type: list
    elements: str
  workload_user:
    description:
      - The user training or inference jobs run as. The hook's executability, which is part of the runtime's gate,
        is evaluated as this user. When running as root, the module also checks this with a real C(access(X_OK))
        as the user, and adds a C(su -l) context.
      - When not given, the gate uses "any unprivileged user", so a hook only root or one group may execute counts
        as not executable. Set V(root) if your workloads run as root.
    type: str
  expect:
    description:
      - The state every context and managed file should have. Each one that differs is a drift finding.
    type: str
    choices: [enabled, disabled]
  fail_on_drift:
    description:
      - Fail when there is any drift finding. The message lists every finding and its reason, and all other return
        values are still included.
    type: bool
    default: false
  container_dump_dir:
    description:
      - The host's container dump area, as given to M(neuron_ops.core_dump.core_dump). Checked when a container
        target is present.
    type: str
    default: /var/lib/neuron-core-dump/containers
  scan_processes:
    description:
      - Scan C(/proc) for processes that map C(libnrt.so*) and compare the values they started with against the
        current settings.
    type: bool
    default: true
  s3_probe:
    description:
      - For each effective S3 prefix, run C(neuron-core-dump self-test --s3 --json) on the host and report its
        result in RV(s3_probe). This is the host program's own check, with the uploader's settings (endpoint, SSE,
        KMS key, expected bucket owner) and credentials path. It runs the hook the way the runtime does into a
        scratch directory, and writes, reads back and deletes one probe object next to where dumps land. It
        removes both afterwards.
      - Skipped in check mode, because the self-test writes. Each result then has C(status=skipped).
      - Needs the C(neuron-core-dump) host program from the P(neuron_ops.core_dump.neuron_dump#role) role.
    type: bool
    default: false
  fail_on_s3_probe:
    description: Fail the module when a self-test of O(s3_probe) fails. By default, a failed self-test is only reported.
    type: bool
    default: false
  dumps_limit:
    description:
      - At most this many dumps in RV(dumps), the newest first. RV(dumps_total) counts all of them.
      - V(0) returns every dump.
    type: int
    default: 50
requirements:
  - Python 3.9 or later on the managed host (the module uses the standard library only)
  - for RV(host_status) and O(s3_probe), the C(neuron-core-dump) host program of the
    P(neuron_ops.core_dump.neuron_dump#role) role, which runs the S3 self-test with the boto3 that role installs
extends_documentation_fragment:
  - neuron_ops.core_dump.attributes
attributes:
  check_mode:
    description: Read-only; runs the same in check mode, except that the O(s3_probe) self-test is skipped.
  diff_mode:
    support: none
    description: Returns no diff; it changes nothing.
notes:
  - The C(login_shell) context runs C(/bin/sh -l) as the module user, so the host's profile scripts run.
  - Unit contexts use the manager environment plus the unit's C(Environment=). C(EnvironmentFile=) is not read.
  - Processes in another mount namespace, such as containers, are listed but not compared. Host settings do not
    reach them.
  - Every string in the result is printable, whatever the host holds. In a string that contains a byte that is
    not UTF-8, a lone surrogate or a control character other than tab and newline, such a character becomes
    C(\xNN) (a lone surrogate C(\uNNNN)), and each backslash becomes C(\\). Other strings are unchanged. This
    covers file names reported by the host program, process names, values read from files and the messages, so
    one oddly named file cannot make the module fail.
seealso:
  - module: neuron_ops.core_dump.core_dump
"""

EXAMPLES = r"""
- name: Report, and fail if any way to start a workload would not capture dumps
  neuron_ops.core_dump.core_dump_info:
    expect: enabled
    fail_on_drift: true
    workload_user: ubuntu
    units: [vllm]
  register: dumps

- name: After disabling, list workloads that still run with the old values
  neuron_ops.core_dump.core_dump_info:
    expect: disabled
  register: after
- ansible.builtin.debug:
    msg: "{{ after.restart_required | map(attribute='pid') | list }}"

- name: Check the upload path with the uploader's own settings and credentials
  neuron_ops.core_dump.core_dump_info:
    s3_probe: true
    fail_on_s3_probe: true
"""

RETURN = r"""
effective_state:
  description: C(enabled) or C(disabled) when all available contexts agree; otherwise C(mixed).
  returned: always
  type: str
  sample: enabled
contexts:
  description: The settings a new workload would get, for each way it can start.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: C(login_shell), C(pam_session), C(su_login:<user>), C(systemd_service) or C(unit:<name>).
      type: str
    available:
      description: False when the context could not be read (no systemd, shell failed); see RV(contexts[].error).
      type: bool
    error:
      description: Why the context is unavailable, or null.
      type: str
    variables:
      description: The two variables as the workload would see them; null means unset.
      type: dict
    effective:
      description:
        - The runtime's decision. It has C(state) (enabled or disabled), C(reason), C(local_dir) and C(s3_prefix)
          (the effective patterns after defaults) and C(local_base) (the directory all dumps land under).
      type: dict
    details:
      description: Extra data for unit contexts (C(LoadState), C(NeedDaemonReload)).
      type: dict
  sample:
    - name: systemd_service
      available: true
      error: null
      variables: {NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY: /var/lib/neuron-core-dump/dumps/dt-%d-cid-%c,
                  NEURON_RT_S3_CORE_DUMP_PREFIX: null}
      effective: {state: enabled, reason: variables set and hook executable,
                  local_dir: /var/lib/neuron-core-dump/dumps/dt-%d-cid-%c, s3_prefix: null,
                  local_base: /var/lib/neuron-core-dump/dumps}
targets:
  description: Each file M(neuron_ops.core_dump.core_dump) manages, with the values it sets and what they mean.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: profile, path: /etc/profile.d/neuron-core-dump.sh, exists: true, managed: true,
       variables: {NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY: "", NEURON_RT_S3_CORE_DUMP_PREFIX: ""},
       effective: {state: disabled, reason: both variables empty (the documented way to disable)}}
drift:
  description: Every drift finding. An empty list means none.
  returned: always
  type: list
  elements: dict
  sample:
    - {where: systemd_manager, reason: "on disk local='' s3='', but the running systemd uses local=unset s3=unset:
        run systemctl daemon-reexec"}
hook:
  description:
    - The hook at C(/opt/aws/neuron/bin/neuron-dump). C(kind) is C(ours) when its first 4 KiB contain
      C(NEURON_CORE_DUMP_HOOK_VERSION = "x.y.z"), C(vendor) for any other file, or C(missing).
    - Also reports C(version), C(sha256), C(mode), C(owner) and C(group). C(expected_sha256) is the checksum of
      the copy the neuron_dump role keeps of the hook it installed (null without the role); a hook with another
      checksum is a drift finding (C(where=hook)), whatever O(expect) is.
    - C(executable_by) gives a result and
      reason for C(root), C(any_user) and C(workload_user). C(gate_executable) is the value used for the gate.
      C(disabled_by_core_dump) is true when the module's record of removed execute bits exists.
  returned: always
  type: dict
  sample: {kind: ours, version: 0.1.0, sha256: 9f86d0..., mode: "0755", gate_executable: true}
vendor:
  description:
    - The vendor hook diverted to C(/opt/aws/neuron/bin/neuron-dump.distrib) (C(present), C(sha256)) and the
      installed version of the C(aws-neuronx-tools) package (C(package_version)). The version is null when the
      package or the package tool is absent.
  returned: always
  type: dict
  sample: {path: /opt/aws/neuron/bin/neuron-dump.distrib, present: true, sha256: 2c26b4..., package: aws-neuronx-tools,
           package_version: 2.32.28.0-1}
containers:
  description:
    - Container coverage. C(runtimes) lists the container runtimes found (C(name), C(version), C(cdi) true/false/null
      and C(cdi_reason)); C(files) our CDI specs and Podman drop-in (C(exists), C(variables), C(problems),
      C(effective)); C(area) the container dump area; C(routes) how a new container gets the settings (V(cdi)
      with the device request C(device), V(podman_default) for every Podman container); C(covered) is true when at
      least one route works; C(processes) lists container processes that map C(libnrt.so*), with the C(runtime)
      and C(container_id) read from their cgroup and the C(env) they started with.
  returned: always
  type: dict
  sample: {covered: true, routes: [cdi], device: neuron-ops.io/core-dump=default, cdi_runtimes: [podman],
           runtimes: [{name: podman, version: 4.3.1, cdi: true}], processes: []}
restart_required:
  description:
    - Running processes that map C(libnrt.so*) and started with values that differ from what a new process in the
      same context would get. Container processes are compared with what our CDI spec or drop-in gives a new
      container now (context C(container:<id>)). Each entry has C(pid), C(comm), C(unit), C(context) and
      C(differs), a list of C(variable), C(process) and C(current). C(comm) and the values are escaped by the
      rule in the notes.
  returned: always
  type: list
  elements: dict
  sample:
    - {pid: 4242, comm: python3, unit: train.service, context: systemd_service,
       differs: [{variable: NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY, process: null, current: ""}]}
processes:
  description:
    - Summary of the C(/proc) scan. C(scanned), C(runtime_processes) and C(unreadable) are counts.
      C(foreign_namespace) lists the PIDs of runtime processes in other mount namespaces.
  returned: always
  type: dict
  sample: {scanned: 212, runtime_processes: 3, unreadable: 0, foreign_namespace: []}
storage:
  description:
    - For each dump root (each effective local base, and C(/tmp/neuron-core-dump)), the C(path), whether it
      C(exists), the C(bytes) and C(count) of dumps, and the C(free_bytes) of its file system. C(truncated) is
      true when the walk stopped early on a very large tree.
  returned: always
  type: list
  elements: dict
  sample: [{path: /var/lib/neuron-core-dump/dumps, name_prefix: dt-, exists: true, bytes: 1048576, count: 2,
            free_bytes: 52428800000, truncated: false, error: null}]
host_status:
  description:
    - The output of C(neuron-core-dump status --json), which includes the spool depth, pending dumps, uploader
      health and storage. Null when C(/usr/local/bin/neuron-core-dump) is not installed. Contains C(error) when
      the command failed.
    - Names in it (dumps, files, errors) are escaped by the rule in the notes. For example, a file named
      C(bad-<0xff><0xfe>.bin) is reported as C(bad-\xff\xfe.bin).
  returned: always
  type: dict
  sample: {spool_depth: 0, pending_dumps: 0, last_error: null, uploader: {healthy: true, detail: idle}, config_ok: true}
dumps:
  description:
    - The dump directories on this host, the newest first (by the newest file in them), at most O(dumps_limit).
      This is the output of C(neuron-core-dump list --json --limit N), so the host program's C(list) and C(info)
      give the same fields. Empty when the host program is not installed (see RV(dumps_error)).
    - C(name), C(path), C(root), C(uid), C(bytes), C(files) (the number of files directly in it) and
      C(newest_mtime).
    - C(job_key) is C(dt-<d>-cid-<c>) when the job's C(%d) and C(%c) are known, else the directory name. C(job)
      holds C(d) and C(c) (or null) and C(job_source) says where they came from (C(record), the hook's records;
      C(name), the directory name matched against the configured pattern; null).
    - C(time) (ISO 8601, UTC) is when the first hook call of the dump ran, else the newest file's time.
    - C(error_code) (int or null), C(error_name) (the C(NRT_*) name of the runtime's C(nrt_status.h), or null),
      C(error_location), C(neff_name), C(neff_uuid), from the hook's records.
    - C(pids), C(ranks) (C(NEURON_PJRT_PROCESS_INDEX) of the workers), C(devices) and C(cores) are sorted lists of
      integers, from the records and the runtime's file names.
    - C(origin) has C(kind) (V(host) or V(container)) and, for host dumps, the C(uid) and C(user) owning the
      directory.
    - C(upload) has C(state) (V(uploaded), V(pending), V(failed) (queued, and the last attempt failed) or
      V(local_only)), C(last_error) and C(manifest_uri) (the C(s3://) URI of its manifest, or null).
    - Everything in a dump is the workload user's and is treated as hostile. Links are not followed, only small
      records are read, lists and strings are capped, and names are escaped by the rule in the notes.
  returned: always
  type: list
  elements: dict
  sample:
    - name: dt-20260101-000000-cid-0000000000000000
      path: /var/lib/neuron-core-dump/dumps/dt-20260101-000000-cid-0000000000000000
      job_key: dt-20260101-000000-cid-0000000000000000
      job: {d: 20260101-000000, c: "0000000000000000"}
      time: "2026-01-01T00:00:02Z"
      error_code: 1006
      error_name: NRT_EXEC_OOB
      error_location: nrt_execute()
      neff_name: model
      neff_uuid: 5f0c2d1e
      pids: [500, 501]
      ranks: [0, 1]
      devices: [0, 1]
      cores: [0, 1]
      files: 12
      bytes: 1048576
      origin: {kind: host, uid: 1001, user: trainer}
      upload: {state: uploaded, last_error: null,
               manifest_uri: "s3://example-bucket/fleet/dt-20260101-000000-cid-0000000000000000/i-0abc-manifest.json"}
dumps_total:
  description: The number of dumps on this host, whatever O(dumps_limit) says; null without the host program.
  returned: always
  type: int
  sample: 3
dumps_error:
  description: Why RV(dumps) could not be read (host program missing or failing), or null.
  returned: always
  type: str
  sample: null
s3_probe:
  description:
    - One result for each effective S3 prefix, or null unless O(s3_probe=true).
    - C(prefix) is the effective prefix and C(probe) is the C(s3://bucket/dir) the self-test wrote under, which
      is the fixed part of the prefix.
    - C(status) is C(passed), C(failed) or C(skipped). It is C(skipped) in check mode, and then C(ok) is null.
    - C(checks) are the self-test's own checks, each with C(name), C(ok) and C(detail). C(error) sums up what
      failed.
  returned: always
  type: list
  elements: dict
  sample: [{prefix: "s3://example-bucket/fleet/%d-%c", probe: "s3://example-bucket/fleet", status: passed, ok: true,
            checks: [{name: s3 probe, ok: true, detail: "s3://example-bucket/fleet/i-0abc-selftest-1.txt"}],
            error: null}]
systemd:
  description:
    - C(running) (systemd is the init), C(version), and C(manager_expands_specifiers), which tells whether this
      version resolves C(%) specifiers in C(DefaultEnvironment=).
  returned: always
  type: dict
  sample: {running: true, version: 252, manager_expands_specifiers: true}
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import (  # noqa: E402
    container_area,
    container_coverage,
    container_runtimes,
    contexts,
    contract,
    drift,
    escaping,
    etc_environment,
    filewriter,
    gate,
    host_program,
    installed_hook,
    paths,
    patterns,
    procscan,
    storage,
    systemd_dropin,
    targets,
    unit_names,
)


def _variables(env):
    return {name: (env or {}).get(name) for name in contract.MANAGED_VARS}


def _context(name, env, hook_ok, error=None, details=None):
    variables = _variables(env)
    ctx = {
        "name": name,
        "available": error is None,
        "error": error,
        "variables": variables,
        "effective": gate.evaluate(variables[contract.LOCAL_DIR_VAR], variables[contract.S3_PREFIX_VAR], hook_ok),
    }
    if details is not None:
        ctx["details"] = details
    return ctx


class Systemd:
    def __init__(self, module):
        self.module = module
        self.running = os.path.isdir(paths.SYSTEMD_RUN_DIR)
        self.bin = module.get_bin_path("systemctl")
        self.version = None
        if self.bin:
            rc, out, _err = self.run("--version")
            self.version = systemd_dropin.parse_version(out) if rc == 0 else None
        self.expands = systemd_dropin.manager_expands_specifiers(self.version)

    def run(self, *args):
        return self.module.run_command([self.bin, *args], environ_update={"LC_ALL": "C"})

    @property
    def usable(self):
        return self.running and bool(self.bin)


def read_targets(units, expands, hook_ok):
    """What each managed file sets, as a list of target reports (one per file of the registry)."""
    found = []
    for target, name, path, data, values in targets.read(units, expands):
        if target.container:
            continue  # reported under "containers": they carry other values on purpose
        variables = _variables(values)
        exists, managed = target.presence(data, values)
        found.append(
            {
                "name": name,
                "path": path,
                "exists": exists,
                "variables": variables,
                "effective": gate.evaluate(
                    variables[contract.LOCAL_DIR_VAR], variables[contract.S3_PREFIX_VAR], hook_ok
                ),
                "managed": managed,
            }
        )
    return found


def read_contexts(module, systemd, units, hook_ok, target_reports):
    found = []
    live = []
    pam_env = etc_environment.parse(filewriter.read_bytes(paths.ETC_ENVIRONMENT))
    found.append(_context("pam_session", pam_env, hook_ok))
    env, error = contexts.login_shell_env(pam_env)
    found.append(_context("login_shell", env, hook_ok, error))
    user = module.params["workload_user"]
    if user:
        env, error = contexts.su_login_env(user)
        found.append(_context("su_login:%s" % user, env, hook_ok, error))

    by_name = {t["name"]: t for t in target_reports}
    if not systemd.usable:
        reason = "systemd is not running" if systemd.bin else "systemctl not found"
        found.append(_context("systemd_service", None, hook_ok, reason))
        for unit in units:
            found.append(_context("unit:%s" % unit, None, hook_ok, reason))
        return found, live

    rc, out, err = systemd.run("show-environment")
    manager_env = contexts.parse_show_environment(out) if rc == 0 else None
    found.append(_context("systemd_service", manager_env, hook_ok, None if rc == 0 else err.strip() or "rc=%d" % rc))
    manager_file = by_name[targets.SYSTEMD_MANAGER]
    if rc == 0 and (manager_file["exists"] or any(v is not None for v in _variables(manager_env).values())):
        live.append(
            {
                "where": targets.SYSTEMD_MANAGER,
                "configured": manager_file["variables"],
                "running": _variables(manager_env),
                "hint": "run systemctl daemon-reexec (or another tool sets them in system.conf)",
            }
        )
    for unit in units:
        rc, out, err = systemd.run("show", "-p", "Environment", "-p", "LoadState", "-p", "NeedDaemonReload", unit)
        if rc != 0:
            found.append(_context("unit:%s" % unit, None, hook_ok, err.strip() or "rc=%d" % rc))
            continue
        props = contexts.parse_properties(out)
        unit_env = contexts.parse_environment_property(props.get("Environment", ""))
        merged = dict(manager_env or {})
        merged.update(unit_env)
        details = {"LoadState": props.get("LoadState"), "NeedDaemonReload": props.get("NeedDaemonReload")}
        found.append(_context("unit:%s" % unit, merged, hook_ok, details=details))
        dropin = by_name.get("unit_dropin:%s" % unit)
        if dropin and dropin["exists"]:
            running = {n: unit_env.get(n) for n in contract.MANAGED_VARS}
            live.append(
                {
                    "where": "unit_dropin:%s" % unit,
                    "configured": dropin["variables"],
                    "running": running,
                    "hint": "run systemctl daemon-reload"
                    if props.get("NeedDaemonReload") == "yes"
                    else "another drop-in or the unit itself overrides them",
                }
            )
    return found, live


def context_for_process(proc, ctx_by_name):
    unit = proc.get("unit") or ""
    if "unit:%s" % unit in ctx_by_name:
        return "unit:%s" % unit
    if unit.endswith(".service"):
        return "systemd_service"
    return "login_shell" if ctx_by_name.get("login_shell", {}).get("available") else "pam_session"


def check_processes(ctx_list, procs, stats):
    ctx_by_name = {c["name"]: c for c in ctx_list}
    stats["foreign_namespace"] = []
    restart = []
    for proc in procs:
        if proc["foreign_namespace"]:
            stats["foreign_namespace"].append(proc["pid"])
            continue
        if proc["env"] is None:
            continue
        name = context_for_process(proc, ctx_by_name)
        ctx = ctx_by_name.get(name)
        if not ctx or not ctx["available"]:
            continue
        differs = [
            {"variable": var, "process": proc["env"].get(var), "current": ctx["variables"].get(var)}
            for var in contract.MANAGED_VARS
            if proc["env"].get(var) != ctx["variables"].get(var)
        ]
        if differs:
            restart.append(
                {"pid": proc["pid"], "comm": proc["comm"], "unit": proc["unit"], "context": name, "differs": differs}
            )
    return restart, stats


def _common_start(first, second):
    length = 0
    while length < min(len(first), len(second)) and first[length] == second[length]:
        length += 1
    return first[:length]


def measure_storage(ctx_list):
    roots = {}
    runtime_root = patterns.storage_root(contract.RUNTIME_DEFAULT_LOCAL_DIR)[0]
    roots[runtime_root] = ""
    for ctx in ctx_list:
        local = ctx["effective"].get("local_dir") if ctx["available"] else None
        if not local:
            continue
        directory, name_prefix = patterns.storage_root(local)
        if not directory:
            continue
        if directory in roots:
            # Two patterns under one directory: count entries matching either name prefix.
            roots[directory] = _common_start(roots[directory], name_prefix)
        else:
            roots[directory] = name_prefix
    return [storage.measure(path, prefix) for path, prefix in sorted(roots.items())]


def package_version(module, name):
    dpkg = module.get_bin_path("dpkg-query")
    if dpkg:
        rc, out, _err = module.run_command([dpkg, "-W", "-f", "${Version}", name], environ_update={"LC_ALL": "C"})
        if rc == 0 and out.strip():
            return out.strip()
    rpm = module.get_bin_path("rpm")
    if rpm:
        rc, out, _err = module.run_command(
            [rpm, "-q", "--qf", "%{VERSION}-%{RELEASE}", name], environ_update={"LC_ALL": "C"}
        )
        if rc == 0 and out.strip():
            return out.strip()
    return None


def vendor_report(module):
    present = os.path.isfile(paths.VENDOR_HOOK)
    sha = None
    if present:
        try:
            sha = filewriter.sha256_file(paths.VENDOR_HOOK)
        except OSError:
            sha = None
    return {
        "path": paths.VENDOR_HOOK,
        "present": present,
        "sha256": sha,
        "package": contract.VENDOR_PACKAGE,
        "package_version": package_version(module, contract.VENDOR_PACKAGE),
    }


def hook_reference_sha256():
    """sha256 of the neuron_dump role's copy of the hook it installed; None without one."""
    try:
        return filewriter.sha256_file(paths.HOOK_REFERENCE)
    except OSError:
        return None


def hook_drift(hook_info):
    """A finding when the hook is not, byte for byte, the one the neuron_dump role installed."""
    expected = hook_info["expected_sha256"]
    if expected is None or hook_info["sha256"] == expected:
        return []
    return [
        {
            "where": "hook",
            "reason": "%s is %s (sha256 %s), not the hook the neuron_dump role installed (sha256 %s, copy in %s): "
            "a package transaction or a hand edit replaced it; run the neuron_dump role"
            % (paths.HOOK, hook_info["kind"], hook_info["sha256"], expected, paths.HOOK_REFERENCE),
        }
    ]


def hook_report(workload_user):
    report = installed_hook.identify(paths.HOOK)
    report["expected_sha256"] = hook_reference_sha256()
    report["executable_by"] = installed_hook.executable_by(paths.HOOK, workload_user)
    who = "workload_user" if workload_user else "any_user"
    report["gate_executable"] = report["executable_by"][who]["executable"]
    report["gate_user"] = workload_user or "any unprivileged user"
    report["disabled_by_core_dump"] = installed_hook.read_state(paths.HOOK_STATE) is not None
    return report


def dumps_report(limit):
    """(dumps, total, error) from the host program's ``list --json --limit N``: one implementation of the fields."""
    if not host_program.installed():
        return [], None, "%s is not installed (role neuron_ops.core_dump.neuron_dump)" % paths.HOST_PROGRAM
    data, error = host_program.run_json(["list", "--json", "--limit", str(limit)], host_program.STATUS_TIMEOUT)
    found = (data or {}).get("dumps")
    if not isinstance(found, list):
        return [], None, error or "neuron-core-dump list gave no dumps"
    total = (data or {}).get("total")
    return [d for d in found if isinstance(d, dict)], total if isinstance(total, int) else len(found), error


def main():
    module = AnsibleModule(
        argument_spec=dict(
            units=dict(type="list", elements="str"),
            workload_user=dict(type="str"),
            expect=dict(type="str", choices=["enabled", "disabled"]),
            fail_on_drift=dict(type="bool", default=False),
            scan_processes=dict(type="bool", default=True),
            container_dump_dir=dict(type="str", default="/var/lib/neuron-core-dump/containers"),
            s3_probe=dict(type="bool", default=False),
            fail_on_s3_probe=dict(type="bool", default=False),
            dumps_limit=dict(type="int", default=50),
        ),
        supports_check_mode=True,
    )
    params = module.params
    problems = [p for name in params["units"] or [] for p in unit_names.problems(name)]
    problems.extend(container_area.option_problems(params["container_dump_dir"]))
    if params["dumps_limit"] < 0:
        problems.append("dumps_limit must be 0 (every dump) or a positive number, not %d" % params["dumps_limit"])
    if problems:
        module.fail_json(msg=escaping.name("; ".join(problems)))
    units = []
    for name in [unit_names.normalize(n) for n in params["units"] or []] + sorted(targets.managed_unit_dropins()):
        if name not in units:
            units.append(name)

    systemd = Systemd(module)
    hook_info = hook_report(params["workload_user"])
    hook_ok = hook_info["gate_executable"]
    target_reports = read_targets(units, systemd.expands, hook_ok)
    ctx_list, live = read_contexts(module, systemd, units, hook_ok, target_reports)
    findings = drift.find(ctx_list, target_reports, params["expect"], live) + hook_drift(hook_info)
    if params["expect"] == "enabled" and not hook_ok:
        findings.append(
            {
                "where": "hook",
                "reason": "%s is not executable by %s: %s"
                % (
                    paths.HOOK,
                    hook_info["gate_user"],
                    hook_info["executable_by"]["workload_user" if params["workload_user"] else "any_user"]["reason"],
                ),
            }
        )

    states = {c["effective"]["state"] for c in ctx_list if c["available"]}
    result = {
        "changed": False,
        "effective_state": states.pop() if len(states) == 1 else "mixed",
        "contexts": ctx_list,
        "targets": target_reports,
        "drift": findings,
        "hook": hook_info,
        "vendor": vendor_report(module),
        "restart_required": [],
        "processes": None,
        "storage": measure_storage(ctx_list),
        "host_status": host_program.status(),
        "dumps": None,
        "dumps_total": None,
        "dumps_error": None,
        "s3_probe": None,
        "systemd": {
            "running": systemd.running,
            "version": systemd.version,
            "manager_expands_specifiers": systemd.expands,
        },
    }
    result["dumps"], result["dumps_total"], result["dumps_error"] = dumps_report(params["dumps_limit"])
    procs, stats = procscan.scan() if params["scan_processes"] else ([], None)
    if params["scan_processes"]:
        result["restart_required"], result["processes"] = check_processes(ctx_list, procs, stats)
    targets.use_container_paths(container_dump_dir=params["container_dump_dir"])
    result["containers"], container_findings, container_restart = container_coverage.report(
        container_runtimes.detect(module), procs, params["expect"]
    )
    findings.extend(container_findings)
    result["restart_required"].extend(container_restart)

    if params["s3_probe"]:
        prefixes = sorted(
            {c["effective"]["s3_prefix"] for c in ctx_list if c["available"] and c["effective"]["s3_prefix"]}
        )
        result["s3_probe"] = [host_program.s3_self_test(p, module.check_mode) for p in prefixes]
        if not prefixes:
            module.warn("s3_probe: no context has an S3 prefix; nothing probed")
        failed = [r for r in result["s3_probe"] if r["status"] == "failed"]
        if failed and params["fail_on_s3_probe"]:
            message = "S3 probe failed: " + "; ".join("%s: %s" % (r["prefix"], r["error"]) for r in failed)
            module.fail_json(**escaping.printable(dict(result, msg=message)))

    if findings and params["fail_on_drift"]:
        module.fail_json(**escaping.printable(dict(result, msg=drift.message(findings, params["expect"]))))
    # Names from the host (files, processes, the host program's output) can hold any bytes.
    module.exit_json(**escaping.printable(result))


if __name__ == "__main__":
    main()
