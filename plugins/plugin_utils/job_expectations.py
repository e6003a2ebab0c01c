# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a fleet report's Jobs row says a fetch of that job must find.

Each host that uploaded its dump names its manifest (``by_host[host].manifest_uris``):
the job prefix is the part before the last ``/``, the host is expected under the
manifest's own name (its stem, which the fetch matches exactly). A host that holds the
dump without a manifest (pending, failed, local only) is expected under its inventory
name, with the report's reason, so a fetch says *why* it is missing.
"""

from __future__ import annotations

import json

from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils.job_manifest import SUFFIX


def read_report(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise ValueError("cannot read the fleet report %s: %s" % (path, exc)) from None


def from_report(report, job):
    """{"prefix": s3 URL or None, "expected_hosts": [...], "reasons": {host: why it has no manifest}}."""
    row = next((j for j in (report or {}).get("jobs") or [] if isinstance(j, dict) and j.get("job") == job), None)
    if row is None:
        raise ValueError("the fleet report has no job %r (see its Jobs section)" % job)
    prefixes, expected, reasons = set(), [], {}
    for host, info in sorted((row.get("by_host") or {}).items()):
        uris = [uri for uri in info.get("manifest_uris") or [] if isinstance(uri, str) and uri.endswith(SUFFIX)]
        for uri in uris:
            prefix, _unused, name = uri.rpartition("/")
            prefixes.add(prefix)
            expected.append(name[: -len(SUFFIX)])
        if not uris:
            expected.append(host)
            reason = info.get("reason")
            reasons[host] = "%s per the fleet report%s" % (
                info.get("state") or "no manifest",
                ": %s" % reason if reason else "",
            )
    if len(prefixes) > 1:
        raise ValueError("job %r has manifests under several prefixes: %s" % (job, ", ".join(sorted(prefixes))))
    return {"prefix": next(iter(prefixes), None), "expected_hosts": expected, "reasons": reasons}
