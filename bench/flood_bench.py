"""Benchmark 4: a flood of one user against another user's dump, and the drain rate of small dumps.

Flood (per repeat, a fresh scratch install and bucket prefix): one user calls the hook
``FLOOD_CALLS`` times, ``FLOOD_PARALLEL`` at a time, each into its own dump dir with its own
S3 prefix; ``VICTIM_DELAY_SECONDS`` after the flood starts a second user's 2 x 2 dump fails
(2 ranks x (2 per-core calls + 1 ``--runtime-generated`` call) into one dir). An uploader
"service" runs ``neuron-core-dump upload --wait`` whenever the spool has entries and none
is running, as the systemd path unit does: in a session of its own (systemd calls setsid()
for every service, so with the kernel's autogroup scheduling its CPU share is not divided by
the flood's process count) at nice 10 (the service unit's ``Nice=``). One extra repeat runs
the uploader at nice 10 inside the flood's own session, the worst case (a kernel without
autogroup and without the cgroup CPU controller), to show what CPU starvation does. Measured: the
victim's latency (from its last hook call returning until its manifest, written last, is in
S3 and names every file of its dir; polled every 50 ms), and the wall time of
``neuron-core-dump status --json`` (a whole process) every 0.5 s throughout.

As root (this machine) the two users are real separate uids (``os.setuid`` in the hook's
child); as another user both run as that user, and the report says so.

Drain: ``DRAIN_DUMPS`` dumps of 6 files (~300 KiB) enqueued at once, then one
``upload --wait`` until all are in S3 -> dumps/s; against ``aws s3 cp --recursive`` of the
same dumps, 10 processes at a time.
"""

import concurrent.futures
import json
import os
import statistics
import subprocess
import threading
import time

from common import AWS_ENV, BenchError, base_env, find_tool, percentile, run_bounded, tail, write_random_file
from s3local import delete_prefix, object_sizes
from scratch import INSTANCE_ID, ScratchInstall

FLOOD_CALLS = 2000
QUICK_FLOOD_CALLS = 200
FLOOD_PARALLEL = 16
VICTIM_DELAY_SECONDS = 5
VICTIM_DEADLINE_SECONDS = 120
FLOOD_UID = 61101
VICTIM_UID = 61102
DRAIN_DUMPS = 200
DRAIN_FILE_SIZES = (150 * 1024, 60 * 1024, 40 * 1024, 30 * 1024, 15 * 1024, 5 * 1024)  # ~300 KiB, 6 files
STATUS_INTERVAL_SECONDS = 0.5
IDLE_STATUS_SAMPLES = 20
HOOK_TIMEOUT_SECONDS = 60
UNIT_NICE = 10  # neuron-core-dump-upload.service's Nice=


def _as_user(uid):
    if uid is None:
        return None

    def switch():
        os.setgid(uid)
        os.setgroups([])
        os.setuid(uid)

    return switch


def _hook_argv(install, dump_dir, prefix, pid, core=0, runtime_file=None):
    argv = [install.hook, "--pid", str(pid), "--tid", str(pid), "--log-id", str(core), "--instance-id", INSTANCE_ID]
    argv += ["--local-output-dir", dump_dir, "--s3-output-prefix", prefix]
    if runtime_file:
        return [*argv, "--runtime-generated", runtime_file]
    return [*argv, "--device-id", "0", "--core-id", str(core), "--error-code", "1006", "--error-location", "x()"]


def _run_hook(argv, env, uid):
    proc = subprocess.run(
        argv, env=env, capture_output=True, timeout=HOOK_TIMEOUT_SECONDS, preexec_fn=_as_user(uid), check=False
    )
    if proc.returncode != 0:
        raise BenchError("hook exited %d: %s" % (proc.returncode, tail(proc.stderr)))


class UploaderService:
    """``upload --wait`` whenever the spool has entries and none runs (what the path unit does).

    ``own_session``: started in a new session, as systemd starts every service; False puts it
    in the bench's session, beside the flood's hooks."""

    def __init__(self, install, env, nice, own_session):
        self.install = install
        self.env = env
        self.nice = nice
        self.own_session = own_session
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.proc = None
        self.failures = []

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        self.thread.join(30)
        return False

    def _loop(self):
        while not self.stop.is_set():
            if not self.install.spool_entries():
                time.sleep(0.05)
                continue
            self.proc = subprocess.Popen(
                [self.install.cli, "upload", "--wait", "--json"],
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                preexec_fn=lambda: os.nice(self.nice),
                start_new_session=self.own_session,
            )
            out, err = self.proc.communicate()
            if self.proc.returncode not in (0, -9) and not self.stop.is_set():
                self.failures.append("upload exited %d: %s %s" % (self.proc.returncode, tail(out), tail(err)))


class StatusProbe:
    """``status --json`` every STATUS_INTERVAL_SECONDS, each followed by the interpreter alone
    (``-IS -c pass``, what every Python process pays before our first line) at the same moment."""

    def __init__(self, install, env, python):
        self.install = install
        self.env = env
        self.python = python
        self.samples = []  # (seconds, healthy)
        self.baseline = []  # seconds of the bare interpreter
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        self.thread.join(30)
        return False

    def _loop(self):
        while not self.stop.is_set():
            started = time.monotonic()
            code, out, err, seconds = run_bounded([self.install.cli, "status", "--json"], 30, self.env)
            if code != 0:
                raise BenchError("status exited %d: %s" % (code, tail(err)))
            self.samples.append((seconds, json.loads(out)["uploader"]["healthy"]))
            self.baseline.append(run_bounded([self.python, "-IS", "-c", "pass"], 30, self.env)[3])
            self.stop.wait(max(0.0, STATUS_INTERVAL_SECONDS - (time.monotonic() - started)))


def _open_for_users(install, tmp):
    """Let other uids reach the scratch install (temp dirs are 0700 by default)."""
    path = install.base
    while True:
        os.chmod(path, os.stat(path).st_mode & 0o7777 | 0o755)
        if path == tmp or path == os.path.dirname(path):
            break
        path = os.path.dirname(path)


def _victim_complete(s3, bucket, key_root, victim_dir):
    """The victim's manifest is in S3 and lists every file now in its dump dir."""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="%s/victim/" % key_root).get("Contents", [])
    local = {name for name in os.listdir(victim_dir) if not name.startswith(".")}
    for item in listed:
        if item["Key"].endswith("-manifest.json"):
            manifest = json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            if {f["name"] for f in manifest["files"]} >= local:
                return True
    return False


def flood_once(tmp, index, hook_python, cli_python, moto, s3, bucket, home, two_users, calls, own_session=True):
    install = ScratchInstall(os.path.join(tmp, "flood-%d" % index), hook_python, cli_python, s3_endpoint=moto.url)
    # the product's defaults for what this measures (the scratch install sets settle 0 for benchmark 3)
    install.config["uploader"]["settle_seconds"] = 2
    with open(install.config_path, "w") as handle:
        json.dump(install.config, handle, indent=2)
    if two_users:
        _open_for_users(install, tmp)
    flood_uid, victim_uid = (FLOOD_UID, VICTIM_UID) if two_users else (None, None)
    env = dict(base_env(home), **AWS_ENV)
    hook_env = {"PATH": "/usr/bin:/bin", "NEURON_RT_LOG_LEVEL": "ERROR"}
    key_root = "flood-%d" % index
    victim_dir = os.path.join(install.dumps, "dt-victim-cid-0")
    victim_prefix = "s3://%s/%s/victim" % (bucket, key_root)
    result = {"calls": calls, "nice": UNIT_NICE, "own_session": own_session}
    uploader = UploaderService(install, env, UNIT_NICE, own_session)
    with uploader as service, StatusProbe(install, env, cli_python) as status:
        started = time.monotonic()

        def flood_call(number):
            dump = os.path.join(install.dumps, "dt-flood-%04d" % number)
            prefix = "s3://%s/%s/f%04d" % (bucket, key_root, number)
            _run_hook(_hook_argv(install, dump, prefix, 1000 + number), hook_env, flood_uid)

        def victim():
            time.sleep(VICTIM_DELAY_SECONDS)
            for rank in range(2):
                pid = 500 + rank
                for core in range(2):
                    _run_hook(_hook_argv(install, victim_dir, victim_prefix, pid, core), hook_env, victim_uid)
                runtime_file = os.path.join(install.base, "nrt-%d.log" % pid)
                with open(runtime_file, "w") as handle:
                    handle.write("runtime log of rank %d\n" % rank)
                os.chmod(runtime_file, 0o644)
                _run_hook(_hook_argv(install, victim_dir, victim_prefix, pid, 2, runtime_file), hook_env, victim_uid)
            return time.monotonic()

        with concurrent.futures.ThreadPoolExecutor(max_workers=FLOOD_PARALLEL + 1) as pool:
            victim_future = pool.submit(victim)
            flood = [pool.submit(flood_call, number) for number in range(calls)]
            failed_at = victim_future.result()
            while time.monotonic() - failed_at < VICTIM_DEADLINE_SECONDS:
                if _victim_complete(s3, bucket, key_root, victim_dir):
                    break  # the manifest is written last and names every file: the whole dump is there
                time.sleep(0.05)
            result["victim_seconds"] = time.monotonic() - failed_at
            for future in flood:
                future.result()
            result["flood_seconds"] = time.monotonic() - started
        result["victim_files"] = len(object_sizes(s3, bucket, "%s/victim/" % key_root))
        if service.failures:
            raise BenchError(service.failures[0])
        result["status_ms"] = [seconds * 1000 for seconds, _healthy in status.samples]
        result["baseline_ms"] = [seconds * 1000 for seconds in status.baseline]
        result["status_unhealthy"] = sum(1 for _seconds, healthy in status.samples if not healthy)
        result["flood_uploaded"] = sum(1 for key in object_sizes(s3, bucket, key_root + "/") if "manifest" in key) - 1
        result["elapsed"] = time.monotonic() - started
    # status with the flood and the uploader stopped, on a spool as deep as the flood (what it
    # leaves where the uploader cannot keep up; here the uploader drained most of it): its own cost
    depth = len(install.spool_entries()) + len(os.listdir(os.path.join(install.spool, "queue")))
    for number in range(max(0, calls - depth)):
        _enqueue(install, os.path.join(install.dumps, "dt-idle-%04d" % number), "%s-idle" % victim_prefix)
    result["spool_depth"] = len(install.spool_entries()) + len(os.listdir(os.path.join(install.spool, "queue")))
    result["idle_status_ms"] = []
    for _sample in range(IDLE_STATUS_SAMPLES):
        code, _out, err, seconds = run_bounded([install.cli, "status", "--json"], 30, env)
        if code != 0:
            raise BenchError("status exited %d: %s" % (code, tail(err)))
        result["idle_status_ms"].append(seconds * 1000)
    delete_prefix(s3, bucket, key_root + "/")
    return result


def _drain_dumps(install):
    dirs = []
    for number in range(DRAIN_DUMPS):
        path = os.path.join(install.dumps, "dt-drain-%04d" % number)
        os.makedirs(path, mode=0o700)
        for position, size in enumerate(DRAIN_FILE_SIZES):
            write_random_file(os.path.join(path, "%s-nd0-nc%d-pid-%d" % (INSTANCE_ID, position, number)), size)
        dirs.append(path)
    return dirs


def _enqueue(install, dump_dir, prefix):
    """A spool entry exactly as the hook writes it (without the hook's record file: 6 files per dump)."""
    entry = {"schema": "neuron-core-dump/spool/v1", "dump_dir": dump_dir, "s3_prefix": prefix, "kind": "core"}
    name = "%d-%s.json" % (time.time_ns(), os.urandom(4).hex())
    with open(os.path.join(install.incoming, "." + name), "w") as handle:
        json.dump(entry, handle)
    os.rename(os.path.join(install.incoming, "." + name), os.path.join(install.incoming, name))


def drain(tmp, hook_python, cli_python, moto, s3, bucket, home):
    install = ScratchInstall(os.path.join(tmp, "drain"), hook_python, cli_python, s3_endpoint=moto.url)
    dirs = _drain_dumps(install)
    env = dict(base_env(home), **AWS_ENV)
    for path in dirs:
        _enqueue(install, path, "s3://%s/drain-ours/%s" % (bucket, os.path.basename(path)))
    code, out, err, seconds = run_bounded([install.cli, "upload", "--wait", "--json"], 900, env)
    if code != 0 or json.loads(out)["dumps_done"] != DRAIN_DUMPS:
        raise BenchError("drain upload: exit %d %s %s" % (code, tail(out), tail(err)))
    ours_objects = len(object_sizes(s3, bucket, "drain-ours/"))
    if ours_objects != DRAIN_DUMPS * (len(DRAIN_FILE_SIZES) + 1):
        raise BenchError("drain: %d objects in S3, expected %d" % (ours_objects, DRAIN_DUMPS * 7))
    delete_prefix(s3, bucket, "drain-ours/")
    aws = find_tool("aws")

    def copy(path):
        argv = [aws, "--endpoint-url", moto.url, "s3", "cp", "--recursive", "--only-show-errors", "--sse", "AES256"]
        code, _out, err, _seconds = run_bounded(
            [*argv, path, "s3://%s/drain-aws/%s" % (bucket, os.path.basename(path))], 300, env
        )
        if code != 0:
            raise BenchError("aws s3 cp exited %d: %s" % (code, tail(err)))

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(copy, dirs))
    aws_seconds = time.monotonic() - started
    aws_objects = len(object_sizes(s3, bucket, "drain-aws/"))
    delete_prefix(s3, bucket, "drain-aws/")
    if aws_objects != DRAIN_DUMPS * len(DRAIN_FILE_SIZES):
        raise BenchError("drain: aws uploaded %d objects" % aws_objects)
    return {
        "dumps": DRAIN_DUMPS,
        "files": len(DRAIN_FILE_SIZES),
        "kib": sum(DRAIN_FILE_SIZES) / 1024,
        "ours_seconds": seconds,
        "ours_rate": DRAIN_DUMPS / seconds,
        "aws_seconds": aws_seconds,
        "aws_rate": DRAIN_DUMPS / aws_seconds,
    }


def bench_flood(tmp, hook_python, cli_python, moto, s3, repeats, home, progress, quick=False):
    bucket = "bench-flood"
    s3.create_bucket(Bucket=bucket)
    two_users = os.geteuid() == 0
    calls = QUICK_FLOOD_CALLS if quick else FLOOD_CALLS
    runs = []
    for index in range(repeats):
        progress(
            "4/4 flood repeat %d of %d: %d hook calls, %d in parallel" % (index + 1, repeats, calls, FLOOD_PARALLEL)
        )
        runs.append(flood_once(tmp, index, hook_python, cli_python, moto, s3, bucket, home, two_users, calls))
    progress("4/4 one more flood with the uploader in the flood's own session (the worst case)")
    niced = flood_once(tmp, repeats, hook_python, cli_python, moto, s3, bucket, home, two_users, calls, False)
    progress("4/4 drain rate: %d dumps of %d files" % (DRAIN_DUMPS, len(DRAIN_FILE_SIZES)))
    drained = drain(tmp, hook_python, cli_python, moto, s3, bucket, home)
    status_ms = [value for run in runs for value in run["status_ms"]]
    idle_ms = [value for run in runs for value in run["idle_status_ms"]]
    baseline_ms = [value for run in runs for value in run["baseline_ms"]]
    return {
        "two_users": two_users,
        "repeats": repeats,
        "runs": runs,
        "victim_median": statistics.median(run["victim_seconds"] for run in runs),
        "status_p50": percentile(status_ms, 0.5),
        "status_p99": percentile(status_ms, 0.99),
        "status_max": max(status_ms),
        "status_samples": len(status_ms),
        "baseline_p50": percentile(baseline_ms, 0.5),
        "baseline_p99": percentile(baseline_ms, 0.99),
        "baseline_max": max(baseline_ms),
        "status_unhealthy": sum(run["status_unhealthy"] for run in runs),
        "idle_status_p50": percentile(idle_ms, 0.5),
        "idle_status_max": max(idle_ms),
        "idle_samples": len(idle_ms),
        "idle_depth": min(run["spool_depth"] for run in runs),
        "drain": drained,
        "niced": niced,
    }
