# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Jobs section of the fleet report: one row per job key across every host.

All ranks of one collectives run agree on ``%d`` and ``%c``, so one failure of a
multi-node job leaves one dump dir per host under one job key: the job, not the host,
is what an engineer asks about ("which job failed, where, with what error, is its dump
complete"). Input is each host's ``dumps`` list from core_dump_info (see its RETURN);
hosts without one (an older collection, no result) are counted, never an error.

Dumps that a host's uploader adopted from a workload container (core_dump_info's ``origin``
with ``kind: container``) are listed per job under ``containers``: a job may fail inside a
container, and its dump then names the container, not a host process.

A host counts as *uploaded* for a job when every dump dir it holds of that job has its
manifest in S3 (upload state ``uploaded``); the job is complete when all its hosts are.
One pass over all dumps, dict lookups only: hundreds of hosts x 50 dumps stay in the
tens of milliseconds (bench/).
"""

from __future__ import annotations

# how one host's dumps of a job add up: the worst state wins
_STATE_RANK = {"failed": 3, "pending": 2, "local_only": 1, "uploaded": 0}
# what a container origin contributes to the Jobs section (core_dump_info's ``origin``)
CONTAINER_FIELDS = ("container_id", "hostname", "image", "runtime", "attribution")


def _error_label(code, name) -> str:
    if code is None and not name:
        return "none"
    if name and code is not None:
        return "%s (%s)" % (name, code)
    return str(name or code)


def _new_row(key, dump) -> dict:
    return {
        "job": key,
        "job_ids": dict(dump.get("job") or {}),
        "newest": None,
        "oldest": None,
        "hosts": {},
        "errors": {},
        "neff_names": set(),
        "containers": [],
        "dumps": 0,
        "files": 0,
        "bytes": 0,
    }


def _add(row, host, dump):
    when = dump.get("time")
    if when:
        row["newest"] = when if row["newest"] is None or when > row["newest"] else row["newest"]
        row["oldest"] = when if row["oldest"] is None or when < row["oldest"] else row["oldest"]
    row["dumps"] += 1
    row["files"] += dump.get("files") or 0
    row["bytes"] += dump.get("bytes") or 0
    if dump.get("neff_name"):
        row["neff_names"].add(dump["neff_name"])
    origin = dump.get("origin")
    if isinstance(origin, dict) and origin.get("kind") == "container":
        container = dict({k: origin.get(k) for k in CONTAINER_FIELDS}, host=host)
        if container not in row["containers"]:
            row["containers"].append(container)
    label = _error_label(dump.get("error_code"), dump.get("error_name"))
    error = row["errors"].get(label)
    if error is None:
        error = row["errors"][label] = {
            "code": dump.get("error_code"),
            "name": dump.get("error_name"),
            "label": label,
            "dumps": 0,
            "hosts": set(),
        }
    error["dumps"] += 1
    error["hosts"].add(host)
    upload = dump.get("upload") or {}
    state = upload.get("state") or "local_only"
    entry = row["hosts"].get(host)
    if entry is None:
        entry = row["hosts"][host] = {"state": state, "reason": None, "manifest_uris": [], "paths": []}
    elif _STATE_RANK.get(state, 3) > _STATE_RANK.get(entry["state"], 3):
        entry["state"] = state
    if upload.get("last_error") and state in ("failed", "pending"):
        entry["reason"] = upload["last_error"]
    if upload.get("manifest_uri"):
        entry["manifest_uris"].append(upload["manifest_uri"])
    if dump.get("path"):
        entry["paths"].append(dump["path"])


def _finish(row) -> dict:
    hosts = row["hosts"]
    errors = sorted(row["errors"].values(), key=lambda e: (-e["dumps"], e["label"]))
    for error in errors:
        error["hosts"] = len(error["hosts"])
    uploaded = sorted(h for h, e in hosts.items() if e["state"] == "uploaded")
    waiting = [
        {"host": h, "state": e["state"], "reason": e["reason"]}
        for h, e in sorted(hosts.items())
        if e["state"] in ("pending", "failed")
    ]
    local_only = sorted(h for h, e in hosts.items() if e["state"] == "local_only")
    return {
        "job": row["job"],
        "job_ids": row["job_ids"],
        "newest": row["newest"],
        "oldest": row["oldest"],
        "hosts": sorted(hosts),
        "host_count": len(hosts),
        "errors": errors,
        "failed": any(e["code"] is not None or e["name"] for e in errors),
        "neff_names": sorted(row["neff_names"]),
        "containers": sorted(row["containers"], key=lambda c: (c["host"], str(c["container_id"]))),
        "dumps": row["dumps"],
        "files": row["files"],
        "bytes": row["bytes"],
        "uploaded_hosts": len(uploaded),
        "upload_complete": len(uploaded) == len(hosts),
        "pending": waiting,
        "local_only": local_only,
        "by_host": {
            h: {"state": e["state"], "reason": e["reason"], "manifest_uris": e["manifest_uris"], "paths": e["paths"]}
            for h, e in sorted(hosts.items())
        },
    }


def build_jobs(results: dict) -> dict:
    """``{"jobs": [row, ...] newest first, "hosts_without_dumps": [...], "hosts_with_more_dumps": [...]}``."""
    rows: dict = {}
    without = []
    capped = []
    for host in sorted(results):
        result = results[host] or {}
        dumps = result.get("dumps")
        if not isinstance(dumps, list):
            without.append(host)
            continue
        total = result.get("dumps_total")
        if isinstance(total, int) and total > len(dumps):
            capped.append({"host": host, "listed": len(dumps), "total": total})
        for dump in dumps:
            if not isinstance(dump, dict):
                continue
            key = dump.get("job_key") or dump.get("name") or "(unnamed)"
            row = rows.get(key)
            if row is None:
                row = rows[key] = _new_row(key, dump)
            _add(row, host, dump)
    jobs = [_finish(row) for row in rows.values()]
    # newest first; jobs without a time last; the key breaks ties so the order is stable
    jobs.sort(key=lambda j: j["job"])
    jobs.sort(key=lambda j: j["newest"] or "", reverse=True)
    return {"jobs": jobs, "hosts_without_dumps": without, "hosts_with_more_dumps": capped}


def newest_failed(jobs: list) -> dict | None:
    return next((job for job in jobs if job["failed"]), None)


def errors_text(job: dict, limit: int = 3) -> str:
    labels = ["%s x%d" % (e["label"], e["dumps"]) if len(job["errors"]) > 1 else e["label"] for e in job["errors"]]
    text = ", ".join(labels[:limit])
    return text + (", ..." if len(labels) > limit else "")


def upload_text(job: dict) -> str:
    text = "%d/%d" % (job["uploaded_hosts"], job["host_count"])
    if job["local_only"] and len(job["local_only"]) == job["host_count"]:
        return text + " (local only)"
    return text


def waiting_text(job: dict, limit: int = 3) -> str:
    parts = ["%s %s%s" % (p["host"], p["state"], ": %s" % p["reason"] if p["reason"] else "") for p in job["pending"]]
    text = "; ".join(parts[:limit])
    return text + ("; and %d more" % (len(parts) - limit) if len(parts) > limit else "")


def containers_text(job: dict, limit: int = 3) -> str:
    """``container 0123456789ab on h1 (podman, enforced)``, one part per container; "" for host dumps."""
    parts = [
        "container %s on %s (%s, %s)"
        % ((c["container_id"] or "unknown")[:12], c["host"], c["runtime"] or "runtime unknown", c["attribution"])
        for c in job.get("containers") or []
    ]
    text = "; ".join(parts[:limit])
    return text + ("; and %d more" % (len(parts) - limit) if len(parts) > limit else "")


def hosts_text(job: dict, limit: int = 5) -> str:
    names = job["hosts"]
    text = ", ".join(names[:limit])
    return text + (" and %d more" % (len(names) - limit) if len(names) > limit else "")
