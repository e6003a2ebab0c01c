"""Benchmarks 1 and 2: how long the runtime stand-in blocks on a hook call.

The time is fake_nrt's own ``blocked_seconds`` (fork+exec to waitpid, the way libnrt
waits), so interpreter start-up and everything the hook does are included.
"""

import json
import os
import sys
import time

from common import AWS_ENV, FAKE_NRT, MIB, BenchError, base_env, percentile, run_bounded, tail
from s3local import delete_prefix, object_sizes
from scratch import record_count

FAKE_NRT_TIMEOUT_SECONDS = 180
# One fake_nrt run = one failing rank: one hook call per failing core, then one --runtime-generated.
FAILING_CORES = 8
CORES_PER_RUN = ",".join("0:%d" % core for core in range(FAILING_CORES))
CALLS_PER_RUN = FAILING_CORES + 1
NAIVE_DUMP_BYTES = 100 * MIB
NAIVE_DUMP_NAME = "core-dump-100MiB.bin"

NAIVE_HOOK = """#!/bin/sh
# A naive neuron-dump: upload the whole dump dir with the aws CLI while the runtime waits.
dir= prefix=
while [ $# -gt 1 ]; do
  case "$1" in
    --local-output-dir) dir=$2; shift ;;
    --s3-output-prefix) prefix=$2; shift ;;
  esac
  shift
done
[ -n "$dir" ] && [ -n "$prefix" ] || exit 0
mkdir -p "$dir"
[ -f "$dir/@NAME@" ] || head -c @SIZE@ /dev/urandom > "$dir/@NAME@"
exec @AWS@ --endpoint-url @URL@ s3 cp --recursive --only-show-errors --sse AES256 "$dir" "${prefix%/}/"
"""


class Variant:
    """One hook under test and the samples measured for it."""

    def __init__(self, name, hook, dump_root, install=None):
        self.name = name
        self.hook = hook
        self.dump_root = dump_root
        self.install = install  # a ScratchInstall when the hook is ours
        self.samples = []
        self.calls_made = 0  # warm-up included, to check every call left its record

    def summary(self):
        return {
            "name": self.name,
            "calls": len(self.samples),
            "p50_ms": percentile(self.samples, 0.50) * 1000,
            "p99_ms": percentile(self.samples, 0.99) * 1000,
            "max_ms": max(self.samples) * 1000,
        }


def write_baseline_hook(directory, python):
    """The floor: the hook's interpreter with the hook's flags, doing nothing (``python3 -IS -c pass``)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "neuron-dump-pass")
    with open(path, "w") as handle:
        handle.write("#!%s -IS\npass\n" % python)
    os.chmod(path, 0o755)
    return path


def write_naive_hook(directory, aws, endpoint):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "neuron-dump-naive")
    body = NAIVE_HOOK.replace("@AWS@", aws).replace("@URL@", endpoint)
    body = body.replace("@NAME@", NAIVE_DUMP_NAME).replace("@SIZE@", str(NAIVE_DUMP_BYTES))
    with open(path, "w") as handle:
        handle.write(body)
    os.chmod(path, 0o755)
    return path


def run_fake_nrt(hook, env, stderr_log, cores="0:0", epoch=None):
    """Fail once like libnrt does and return fake_nrt's call reports (all must have exited 0)."""
    argv = [sys.executable, FAKE_NRT, "--hook", hook, "--cores", cores, "--report", "-"]
    if epoch is not None:
        argv += ["--epoch", str(epoch)]
    with open(stderr_log, "ab") as log_handle:
        code, out, _err, _secs = run_bounded(argv, FAKE_NRT_TIMEOUT_SECONDS, env, stderr=log_handle)
    if code != 0:
        raise BenchError("fake_nrt exited %d (see %s):\n%s" % (code, stderr_log, tail(out)))
    report = json.loads(out)
    if not report["gate"]["enabled"]:
        raise BenchError("fake_nrt did not call the hook: %s" % report["gate"]["reason"])
    calls = [call for rank in report["ranks"] for call in rank["calls"]]
    bad = [call for call in calls if call["exit_status"] != 0]
    if bad:
        raise BenchError("hook %s exited %d (see %s)" % (hook, bad[0]["exit_status"], stderr_log))
    return calls


def runtime_env(home, local_template, s3_template, extra=None):
    env = base_env(home)
    env.update(extra or {})
    env["NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY"] = local_template
    env["NEURON_RT_S3_CORE_DUMP_PREFIX"] = s3_template
    return env


def check_ours_did_the_work(variant, dump_dirs):
    """A hook that broke early would also be fast: prove every call wrote its record and spool entry."""
    install = variant.install
    records = record_count(dump_dirs)
    entries = len(install.spool_entries())
    if records != variant.calls_made or entries != variant.calls_made:
        raise BenchError(
            "%s: %d calls but %d records and %d spool entries (log: %s)"
            % (variant.name, variant.calls_made, records, entries, install.log_file)
        )
    errors = install.log_errors()
    if errors:
        raise BenchError("%s logged errors:\n%s" % (variant.name, "\n".join(errors[:5])))


def bench_blocking(variants, runs, home, stderr_log):
    """Benchmark 1: many fake_nrt runs of CALLS_PER_RUN calls each, variants interleaved."""
    epoch = int(time.time()) - 86400  # one distinct %d (one fresh dump dir) per run, in the past
    for index in range(runs + 1):  # run 0 warms the page cache and is not counted
        # rotate the order so no variant always runs right after another one
        for offset in range(len(variants)):
            variant = variants[(index + offset) % len(variants)]
            env = runtime_env(home, variant.dump_root + "/dt-%d-cid-%c", "s3://bench-hook/dt-%d-cid-%c")
            calls = run_fake_nrt(variant.hook, env, stderr_log, cores=CORES_PER_RUN, epoch=epoch + index)
            variant.calls_made += len(calls)
            if index:
                variant.samples.extend(call["blocked_seconds"] for call in calls)
    for variant in variants:
        if variant.install is not None:
            dirs = [os.path.join(variant.dump_root, name) for name in os.listdir(variant.dump_root)]
            check_ours_did_the_work(variant, dirs)
    return [variant.summary() for variant in variants]


def stage_dump_dir(path, source):
    """A dump dir holding the 100 MiB file, as the vendor capture would have left it (hard link: no copy)."""
    os.makedirs(path, mode=0o700)
    os.link(source, os.path.join(path, NAIVE_DUMP_NAME))


def bench_naive(naive, ours, runs, home, stderr_log, s3, bucket, source):
    """Benchmark 2: the naive synchronous uploader vs ours, each call with the 100 MiB file in its dump dir."""
    for index in range(runs):
        for variant in (naive, ours) if index % 2 == 0 else (ours, naive):
            label = "%s-run-%d" % ("naive" if variant is naive else "ours", index)
            dump_dir = os.path.join(variant.dump_root, label)
            stage_dump_dir(dump_dir, source)
            env = runtime_env(home, dump_dir, "s3://%s/%s" % (bucket, label), AWS_ENV)
            calls = run_fake_nrt(variant.hook, env, stderr_log)
            variant.calls_made += len(calls)
            variant.samples.extend(call["blocked_seconds"] for call in calls)
            if variant is naive:
                check_naive_uploaded(s3, bucket, label + "/")
    check_ours_did_the_work(ours, [os.path.join(ours.dump_root, name) for name in os.listdir(ours.dump_root)])
    return naive.summary(), ours.summary()


def check_naive_uploaded(s3, bucket, prefix):
    """The naive hook's time only counts if it really moved the 100 MiB."""
    sizes = object_sizes(s3, bucket, prefix)
    if sizes.get(NAIVE_DUMP_NAME) != NAIVE_DUMP_BYTES:
        raise BenchError("naive hook did not upload %s to s3://%s/%s: %r" % (NAIVE_DUMP_NAME, bucket, prefix, sizes))
    delete_prefix(s3, bucket, prefix)
