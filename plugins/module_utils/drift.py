# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decide whether a host is in the state it should be, and say why not.

Drift is any of: the places a workload can start from would give it different
settings; a target file disagrees with another; a file on disk is not what the
running systemd uses yet; the effective state differs from the expected one.
Each finding is {"where": ..., "reason": ...} so a fleet report can list them.
"""

from __future__ import annotations

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract


def describe(variables):
    """Short text of the two variables: local='...' s3=unset."""
    parts = []
    for name, label in ((contract.LOCAL_DIR_VAR, "local"), (contract.S3_PREFIX_VAR, "s3")):
        value = variables.get(name)
        parts.append("%s=%s" % (label, "unset" if value is None else repr(value)))
    return " ".join(parts)


def _summary(effective):
    text = effective["state"]
    if effective["state"] == "enabled":
        s3 = ", s3 %s" % effective["s3_prefix"] if effective["s3_prefix"] else ""
        text += " (local %s%s)" % (effective["local_dir"], s3)
    else:
        text += " (%s)" % effective["reason"]
    return text


def find(contexts, targets, expect=None, live=None):
    """Every drift finding.

    ``contexts``: [{name, available, variables, effective}]
    ``targets``: [{name, exists, variables, effective}] for the files we manage
    ``expect``: "enabled" / "disabled" / None
    ``live``: [{where, configured, running, hint}] pairs to compare (file vs what systemd uses)
    """
    findings = []
    usable = [c for c in contexts if c.get("available")]

    if expect:
        for ctx in usable:
            if ctx["effective"]["state"] != expect:
                findings.append(
                    {
                        "where": ctx["name"],
                        "reason": "a new workload started this way is %s; expected %s"
                        % (_summary(ctx["effective"]), expect),
                    }
                )
        for target in targets:
            if target.get("exists") and target["effective"]["state"] != expect:
                findings.append(
                    {
                        "where": target["name"],
                        "reason": "%s sets %s, which is %s; expected %s"
                        % (
                            target.get("path", target["name"]),
                            describe(target["variables"]),
                            target["effective"]["state"],
                            expect,
                        ),
                    }
                )

    keys = {}
    for ctx in usable:
        eff = ctx["effective"]
        keys.setdefault((eff["state"], eff["local_dir"], eff["s3_prefix"]), []).append(ctx["name"])
    if len(keys) > 1:
        findings.append(
            {
                "where": "contexts",
                "reason": "workloads get different settings depending on how they "
                "start: " + "; ".join("%s: %s" % (ctx["name"], _summary(ctx["effective"])) for ctx in usable),
            }
        )

    present = [t for t in targets if t.get("exists")]
    values = {}
    for target in present:
        values.setdefault(tuple(target["variables"].get(n) for n in contract.MANAGED_VARS), []).append(target["name"])
    if len(values) > 1:
        findings.append(
            {
                "where": "targets",
                "reason": "managed files disagree: "
                + "; ".join("%s: %s" % (t["name"], describe(t["variables"])) for t in present),
            }
        )

    for pair in live or []:
        if pair["configured"] != pair["running"]:
            findings.append(
                {
                    "where": pair["where"],
                    "reason": "on disk %s, but the running systemd uses %s: %s"
                    % (describe(pair["configured"]), describe(pair["running"]), pair["hint"]),
                }
            )
    return findings


def message(findings, expect=None):
    head = "core dump settings drift" + (" (expected %s)" % expect if expect else "")
    return head + ": " + " | ".join("%s: %s" % (f["where"], f["reason"]) for f in findings)
