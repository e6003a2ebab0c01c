# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""core_dump_info's container section: runtimes, our spec and drop-in, and running Neuron containers.

A host is "covered" for containers when a runtime on it that reads CDI has our
valid, enabled spec (or Podman has our enabled drop-in) and the container dump
area is sound. Running container processes that map libnrt are compared with
what those files give a new container now; the ones that differ must restart.
"""

from __future__ import annotations

import contextlib
import os

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import (
    cdi_spec,
    container_area,
    container_runtimes,
    containers_conf,
    contract,
    drift,
    gate,
    paths,
    targets,
)

_PROBLEMS = {targets.CDI: cdi_spec.problems, targets.PODMAN: containers_conf.problems}


def read_files():
    """One report per container target file: exists, variables, problems, effective state."""
    shared = container_area.shared_dir()
    found = []
    for target, name, path, data, values in targets.read([]):
        if not target.container:
            continue
        variables = {n: values.get(n) for n in contract.MANAGED_VARS}
        found.append(
            {
                "name": name,
                "target": target.name,
                "path": path,
                "exists": data is not None,
                "variables": variables,
                "problems": _PROBLEMS[target.name](data, shared) if data is not None else [],
                # The image's own hook decides in the container; assume it is executable.
                "effective": gate.evaluate(variables[contract.LOCAL_DIR_VAR], variables[contract.S3_PREFIX_VAR], True),
            }
        )
    return found


def _cgroup(pid):
    with contextlib.suppress(OSError), open(os.path.join(paths.PROC_ROOT, str(pid), "cgroup"), "rb") as handle:
        return handle.read().decode("utf-8", "replace")
    return ""


def processes(procs, expected):
    """(container processes, restart_required entries) from procscan results."""
    listed = []
    restart = []
    for proc in procs:
        if not proc["foreign_namespace"]:
            continue
        runtime, container_id = container_runtimes.container_of(_cgroup(proc["pid"]))
        entry = {
            "pid": proc["pid"],
            "comm": proc["comm"],
            "runtime": runtime,
            "container_id": container_id,
            "env": proc["env"],
            "error": proc["error"],
        }
        listed.append(entry)
        if proc["env"] is None or expected is None:
            continue
        differs = [
            {"variable": var, "process": proc["env"].get(var), "current": expected.get(var)}
            for var in contract.MANAGED_VARS
            if proc["env"].get(var) != expected.get(var)
        ]
        if differs:
            restart.append(
                {
                    "pid": proc["pid"],
                    "comm": proc["comm"],
                    "unit": proc["unit"],
                    "context": "container:%s" % (container_id or "unknown")[:12],
                    "container_id": container_id,
                    "differs": differs,
                }
            )
    return listed, restart


def report(runtimes, procs, expect=None):
    """(containers section, drift findings, restart_required entries)."""
    files = read_files()
    area = container_area.report(paths.CONTAINER_DUMP_AREA)
    present = [f for f in files if f["exists"]]
    findings = []
    for entry in present:
        for problem in entry["problems"]:
            findings.append({"where": entry["name"], "reason": "%s: %s" % (entry["path"], problem)})
        if expect and entry["effective"]["state"] != expect:
            findings.append(
                {
                    "where": entry["name"],
                    "reason": "%s gives containers %s, which is %s; expected %s"
                    % (entry["path"], drift.describe(entry["variables"]), entry["effective"]["state"], expect),
                }
            )
    distinct = {tuple(f["variables"].get(n) for n in contract.MANAGED_VARS) for f in present}
    if len(distinct) > 1:
        findings.append(
            {
                "where": "container_targets",
                "reason": "container files disagree: "
                + "; ".join("%s: %s" % (f["name"], drift.describe(f["variables"])) for f in present),
            }
        )
    cdi_files = [f for f in present if f["target"] == targets.CDI]
    if len(cdi_files) > 1:
        findings.append(
            {"where": "cdi", "reason": "our spec is in both /etc/cdi and /var/run/cdi; /var/run/cdi shadows /etc/cdi"}
        )
    enabling = [f for f in present if f["effective"]["state"] == gate.ENABLED]
    enabled_files = [f for f in enabling if not f["problems"]]
    if enabling:
        for problem in area["problems"]:
            findings.append({"where": "container_area", "reason": problem})
    if enabling and not area["exists"]:
        findings.append(
            {
                "where": "container_area",
                "reason": "%s is missing: containers given the mount fail to start" % area["shared"],
            }
        )
    cdi_runtimes = [r["name"] for r in runtimes if r["cdi"]]
    routes = []
    if any(f["target"] == targets.CDI for f in enabled_files) and cdi_runtimes:
        routes.append("cdi")
    if any(f["target"] == targets.PODMAN for f in enabled_files) and any(r["name"] == "podman" for r in runtimes):
        routes.append("podman_default")
    covered = bool(routes) and area["exists"] and not area["problems"]

    expected = None
    if present and len(distinct) == 1:
        expected = present[0]["variables"]
    listed, restart = processes(procs, expected)
    section = {
        "runtimes": runtimes,
        "cdi_runtimes": cdi_runtimes,
        "files": files,
        "area": area,
        "device": cdi_spec.DEVICE_REQUEST,
        "routes": routes,
        "covered": covered,
        "processes": listed,
    }
    return section, findings, restart
