"""``neuron-core-dump self-test``: run the installed hook the way the runtime does, check, clean up.

Checks, each reported as pass/fail:

- the config is valid;
- the hook file carries our marker and is executable by every user (the runtime
  checks X_OK as the workload's user);
- a per-core call and a ``--runtime-generated`` call into a scratch dir below the
  first dump root both exit 0 and write their records, the runtime file is copied
  in, modes are 0700 (dir) / 0600 (files);
- with ``--s3``: a probe object is written with the configured SSE and bucket-owner
  settings, read back byte for byte, its SSE header checked, and deleted.

The scratch dir, its spool entries and the temporary runtime file are removed afterwards.
"""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time

from . import config as config_mod
from . import fsutil, hostinfo, layout, s3, spool

DEFAULT_HOOK = layout.HOOK
MARKER = "NEURON_CORE_DUMP_HOOK_VERSION"


class Report:
    def __init__(self):
        self.checks = []

    def add(self, name, ok, detail=""):
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail})
        return ok

    @property
    def ok(self):
        return all(c["ok"] for c in self.checks)

    def as_dict(self):
        return {"ok": self.ok, "checks": self.checks}

    def human(self):
        lines = [
            "%s  %s%s" % ("PASS" if c["ok"] else "FAIL", c["name"], ": " + c["detail"] if c["detail"] else "")
            for c in self.checks
        ]
        lines.append("self-test %s" % ("passed" if self.ok else "FAILED"))
        return "\n".join(lines)


def run(config_path, hook_path=DEFAULT_HOOK, with_s3=False, s3_prefix=None):
    report = Report()
    try:
        config = config_mod.read(config_path)
        report.add("config", True, config_path)
    except config_mod.ConfigError as exc:
        report.add("config", False, "%s: %s" % (exc.key, exc.rule))
        return report
    if _check_hook_file(report, hook_path):
        _check_calls(report, config, hook_path)
    if with_s3:
        _check_s3(report, config, s3_prefix or config["s3"]["selftest_prefix"])
    return report


def _check_hook_file(report, hook_path):
    try:
        info = os.stat(hook_path)
        with open(hook_path, "rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        return report.add("hook file", False, "%s: %s" % (hook_path, exc))
    if MARKER.encode() not in head:
        return report.add("hook file", False, "%s is not our hook (no %s line)" % (hook_path, MARKER))
    if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o111 != 0o111:
        return report.add("hook file", False, "%s must be a regular file executable by everyone" % hook_path)
    return report.add("hook file", True, "%s mode %04o" % (hook_path, stat.S_IMODE(info.st_mode)))


def _runtime_argv(pid, scratch, instance_id, extra):
    argv = [
        "--pid", str(pid), "--tid", str(pid), "--log-id", "0",
        "--instance-id", instance_id, "--cluster-id", "0000000000000000",
        "--date-time", time.strftime("%Y%m%d-%H%M%S"), "--local-output-dir", scratch,
    ]  # fmt: skip
    return argv + extra


def _run_hook(hook_path, argv, timeout):
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [hook_path, *argv], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - started, b""
    return proc.returncode, time.monotonic() - started, proc.stderr


def _check_calls(report, config, hook_path):
    root = config["dump_roots"][0]
    name = "selftest-%s" % fsutil.unique_suffix()
    scratch = os.path.join(root, name)
    runtime_dir = tempfile.mkdtemp(prefix="neuron-core-dump-selftest-")
    instance_id, _unused = hostinfo.instance_id(config["hook"]["instance_id_file"], None, config["state_dir"])
    pid = os.getpid()
    runtime_file = os.path.join(runtime_dir, "%s-nrt-pid-%d.log" % (instance_id, pid))
    timeout = config["hook"]["vendor_timeout_seconds"] + config["hook"]["budget_seconds"] + 5
    try:
        with open(runtime_file, "w", encoding="utf-8") as handle:
            handle.write("self-test runtime log line\n")
        per_core = _runtime_argv(
            pid,
            scratch,
            instance_id,
            ["--neff-name", "selftest", "--neff-uuid", "0", "--error-location", "nrt_execute()",
             "--error-code", "1006", "--device-id", "0", "--core-id", "0"],
        )  # fmt: skip
        runtime = _runtime_argv(pid, scratch, instance_id, ["--runtime-generated", runtime_file])
        for label, argv in (("per-core call", per_core), ("runtime-generated call", runtime)):
            code, seconds, stderr = _run_hook(hook_path, argv, timeout)
            detail = "exit %s in %.3fs" % (code, seconds)
            if stderr.strip():
                detail += "; stderr: %s" % stderr.decode("utf-8", "replace").strip()[:300]
            report.add(label, code == 0, detail)
        _check_scratch(report, scratch, instance_id, os.path.basename(runtime_file))
    finally:
        _remove_spool_entries(config, scratch)
        shutil.rmtree(runtime_dir, ignore_errors=True)
        _remove_scratch(root, name)


def _check_scratch(report, scratch, instance_id, runtime_name):
    try:
        info = os.lstat(scratch)
        names = sorted(os.listdir(scratch))
    except OSError as exc:
        report.add("dump dir", False, "%s: %s" % (scratch, exc))
        return
    report.add(
        "dump dir mode",
        stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) & 0o077 == 0,
        "%04o" % stat.S_IMODE(info.st_mode),
    )
    core = [n for n in names if n.startswith(instance_id + "-ncd-core-") and "-nd0-nc0-" in n]
    runtime = [n for n in names if n.startswith(instance_id + "-ncd-runtime-")]
    report.add("per-core record", len(core) == 1, ", ".join(core) or "missing")
    report.add("runtime record", len(runtime) == 1, ", ".join(runtime) or "missing")
    report.add("runtime file copied", runtime_name in names, runtime_name)
    for record_name in core + runtime:
        try:
            with open(os.path.join(scratch, record_name), "rb") as handle:
                data = json.loads(handle.read().decode("utf-8"))
            mode = stat.S_IMODE(os.lstat(os.path.join(scratch, record_name)).st_mode)
        except (OSError, ValueError) as exc:
            report.add("record %s" % record_name, False, str(exc))
            continue
        ok = (
            data.get("schema") == "neuron-core-dump/record/v1"
            and data.get("flags", {}).get("local-output-dir") == scratch
        )
        report.add("record content %s" % data.get("kind"), ok and mode & 0o077 == 0, "mode %04o" % mode)


def _remove_spool_entries(config, scratch):
    try:
        with spool.Spool(config["spool_dir"]) as handle:
            handle.discard(scratch)
    except OSError:
        pass


def _remove_scratch(root, name):
    try:
        root_fd = fsutil.walk(root)
    except OSError:
        return
    try:
        fsutil.remove_tree(root_fd, name)
    except OSError:
        pass
    finally:
        os.close(root_fd)


def _check_s3(report, config, prefix):
    if not prefix:
        report.add("s3 probe", False, "no S3 prefix: set s3.selftest_prefix or pass --s3-prefix")
        return
    try:
        bucket, key_prefix = s3.parse_url(prefix)
        client = s3.Client(config["s3"])
        instance_id, _unused = hostinfo.instance_id(config["hook"]["instance_id_file"], None, config["state_dir"])
        key = s3.join_key(key_prefix, "%s-selftest-%s.txt" % (instance_id, fsutil.unique_suffix()))
        body = ("neuron-core-dump self-test probe from %s\n" % hostinfo.hostname()).encode()
        client.put_bytes(bucket, key, body, hashlib.sha256(body).digest())
        try:
            head = client.head(bucket, key)
            got = client.call("get_object", Bucket=bucket, Key=key)["Body"].read()
            expected_sse = client.sse_params.get("ServerSideEncryption")
            sse_ok = expected_sse is None or (head or {}).get("ServerSideEncryption") == expected_sse
            report.add(
                "s3 probe",
                got == body and sse_ok,
                "s3://%s/%s (sse %s)" % (bucket, key, (head or {}).get("ServerSideEncryption")),
            )
        finally:
            client.call("delete_object", Bucket=bucket, Key=key)
    except Exception as exc:  # any failure is the test's answer, reported rather than raised
        report.add("s3 probe", False, s3.describe_error(exc))
