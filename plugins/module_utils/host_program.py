# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ask the host program (``neuron-core-dump``, installed by the neuron_dump role) for data.

The host program owns the uploader's settings (endpoint, SSE, KMS key, expected
bucket owner) and its credentials path, so the modules run its commands instead of
re-implementing any of them. Every answer is plain data; a missing, failing or
garbled program is an ``error`` in that data, never an exception.
"""

from __future__ import annotations

import json
import os
import subprocess

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import paths, patterns, s3_prefix

STATUS_TIMEOUT = 30
# self-test runs the hook twice (each bounded by the hook's budget) and up to four S3 calls.
SELF_TEST_TIMEOUT = 180


def run_json(args, timeout):
    """``neuron-core-dump ARGS`` -> (dict or None, error text or None)."""
    argv = [paths.HOST_PROGRAM, *args]
    command = " ".join(argv)
    try:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, "%s did not finish within %ds" % (command, timeout)
    except OSError as exc:
        return None, str(exc)
    try:
        data = json.loads(result.stdout.decode("utf-8", "replace"))
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return None, "%s exited %d without a JSON object: %s" % (
            command,
            result.returncode,
            result.stderr.decode("utf-8", "replace").strip()[:500],
        )
    return data, None if result.returncode == 0 else "exited %d" % result.returncode


def installed():
    return os.path.exists(paths.HOST_PROGRAM)


def status():
    """``status --json``; None when the host program is not installed."""
    if not installed():
        return None
    data, error = run_json(["status", "--json"], STATUS_TIMEOUT)
    if data is None:
        return {"error": error}
    if error:
        data.setdefault("error", error)
    return data


def probe_location(prefix):
    """``s3://bucket/dir`` where the probe of ``prefix`` goes: its fixed part, up to the last ``/``."""
    bucket, key = s3_prefix.split(prefix)
    if not bucket:
        return None
    directory = patterns.literal_prefix(key or "").rpartition("/")[0]
    return "s3://%s/%s" % (bucket, directory) if directory else "s3://%s" % bucket


def s3_self_test(prefix, check_mode):
    """One ``self-test --s3 --json`` next to where dumps of ``prefix`` land.

    Returns {prefix, probe, status (passed|failed|skipped), ok, checks, error}. In
    check mode nothing runs (the self-test writes a scratch dump and a probe object).
    """
    result = {"prefix": prefix, "probe": probe_location(prefix), "status": "failed", "ok": False}
    result.update(checks=[], error=None)
    if check_mode:
        result.update(status="skipped", ok=None, error="check mode: the self-test writes, so it did not run")
        return result
    if result["probe"] is None:
        result["error"] = "not an s3://bucket/prefix value"
        return result
    if not installed():
        result["error"] = "%s is not installed (role neuron_ops.core_dump.neuron_dump)" % paths.HOST_PROGRAM
        return result
    args = ["self-test", "--json", "--s3", "--hook", paths.HOOK, "--s3-prefix=" + result["probe"]]
    data, error = run_json(args, SELF_TEST_TIMEOUT)
    checks = (data or {}).get("checks")
    result["checks"] = checks if isinstance(checks, list) else []
    failed = [c for c in result["checks"] if isinstance(c, dict) and not c.get("ok")]
    result["ok"] = data is not None and data.get("ok") is True and not failed and error is None
    result["status"] = "passed" if result["ok"] else "failed"
    if not result["ok"]:
        details = ["%s: %s" % (c.get("name"), c.get("detail")) for c in failed]
        result["error"] = "; ".join(details) or error or "self-test did not report ok"
    return result
