"""Benchmark 3: uploader throughput against ``aws s3 cp --recursive``, same dump, same endpoint.

Both sides are timed as whole processes (interpreter start, imports, every request), and
both are checked afterwards: every local file must be in S3 with its size, otherwise the
run is an error rather than a number.
"""

import json
import os
import statistics

from common import (
    AWS_ENV,
    MIB,
    BenchError,
    base_env,
    children_cpu_seconds,
    regular_files,
    run_bounded,
    tail,
    write_random_file,
)
from s3local import delete_prefix, object_sizes
from scratch import INSTANCE_ID

UPLOAD_TIMEOUT_SECONDS = 240
HOOK_TIMEOUT_SECONDS = 30
KIB = 1024


def mixed_dump_layout():
    """{file name: size}: 1 x 100 MiB, 4 x 20 MiB, 50 x ~400 KiB, 100 small; ~200 MiB in all."""
    layout = {"core-nd0-nc0.bin": 100 * MIB}
    layout.update({"hbm-nd0-%d.bin" % index: 20 * MIB for index in range(4)})
    # sizes spread a little so nothing lines up on a chunk or page boundary by accident
    layout.update({"trace-%02d.bin" % index: 400 * KIB + index * 997 for index in range(50)})
    layout.update({"reg-%03d.txt" % index: 1 * KIB + index * 131 for index in range(100)})
    return layout


def create_dump(directory):
    os.makedirs(directory, mode=0o700)
    for name, size in mixed_dump_layout().items():
        write_random_file(os.path.join(directory, name), size)


def enqueue_with_hook(install, dump_dir, prefix, env):
    """Invoke the installed hook once, as the runtime would, so it writes the spool entry."""
    argv = [install.hook, "--pid", "4242", "--tid", "4242", "--log-id", "0", "--instance-id", INSTANCE_ID]
    argv += ["--device-id", "0", "--core-id", "0", "--error-code", "1006", "--error-location", "nrt_execute()"]
    argv += ["--local-output-dir", dump_dir, "--s3-output-prefix", prefix]
    code, _out, err, _secs = run_bounded(argv, HOOK_TIMEOUT_SECONDS, env)
    if code != 0 or not install.spool_entries():
        raise BenchError("the hook did not enqueue %s (exit %d): %s" % (dump_dir, code, tail(err)))


def upload_with_ours(install, dump_dir, bucket, key_prefix, home):
    env = dict(base_env(home), **AWS_ENV)
    enqueue_with_hook(install, dump_dir, "s3://%s/%s" % (bucket, key_prefix.rstrip("/")), env)
    expected = regular_files(dump_dir)  # includes the record the hook just wrote
    code, out, err, seconds = run_bounded([install.cli, "upload", "--json"], UPLOAD_TIMEOUT_SECONDS, env)
    if code != 0:
        raise BenchError("neuron-core-dump upload exited %d:\n%s\n%s" % (code, tail(out), tail(err)))
    result = json.loads(out)
    if result.get("dumps_done") != 1 or result.get("errors"):
        raise BenchError("neuron-core-dump upload did not finish the dump: %s" % tail(out))
    return expected, seconds


def upload_with_aws(aws, endpoint, dump_dir, bucket, key_prefix, home):
    env = dict(base_env(home), **AWS_ENV)
    expected = regular_files(dump_dir)
    argv = [aws, "--endpoint-url", endpoint, "s3", "cp", "--recursive", "--only-show-errors", "--sse", "AES256"]
    argv += [dump_dir, "s3://%s/%s" % (bucket, key_prefix)]
    code, out, err, seconds = run_bounded(argv, UPLOAD_TIMEOUT_SECONDS, env)
    if code != 0:
        raise BenchError("aws s3 cp exited %d:\n%s\n%s" % (code, tail(out), tail(err)))
    return expected, seconds


def verify_and_clear(s3, bucket, key_prefix, expected, allowed_extra):
    """Every local file is in S3 with the same size; returns the bytes that were uploaded."""
    remote = object_sizes(s3, bucket, key_prefix)
    missing = {name: size for name, size in expected.items() if remote.get(name) != size}
    unexpected = [name for name in remote if name not in expected and not allowed_extra(name)]
    if missing or unexpected:
        raise BenchError(
            "s3://%s/%s does not match the dump: %d files missing or of another size (%s), unexpected %s"
            % (bucket, key_prefix, len(missing), sorted(missing)[:3], unexpected[:3])
        )
    delete_prefix(s3, bucket, key_prefix)
    return sum(expected.values())


def is_manifest(name):
    return name.endswith("-manifest.json")  # ours writes it last, as the completion marker


def upload_once(tool, install, aws, moto, s3, bucket, dump_dir, key_prefix, home):
    """One timed upload, verified; returns {bytes, seconds, client_cpu, server_cpu}."""
    client_before, server_before = children_cpu_seconds(), moto.cpu_seconds()
    if tool == "ours":
        expected, seconds = upload_with_ours(install, dump_dir, bucket, key_prefix, home)
    else:
        expected, seconds = upload_with_aws(aws, moto.url, dump_dir, bucket, key_prefix, home)
    # the hook call before ours is counted as client CPU too: a few ms, and on our side of the scale
    client_cpu, server_cpu = children_cpu_seconds() - client_before, moto.cpu_seconds() - server_before
    uploaded = verify_and_clear(s3, bucket, key_prefix, expected, is_manifest if tool == "ours" else no_extra)
    return {"bytes": uploaded, "seconds": seconds, "client_cpu": client_cpu, "server_cpu": server_cpu}


def no_extra(_name):
    return False


def bench_throughput(install, aws, moto, s3, bucket, dump_dir, rounds, home):
    """Alternate ours/aws ``rounds`` times each; returns per-round measurements and medians per tool."""
    create_dump(dump_dir)
    measured = {"ours": [], "aws": []}
    for index in range(rounds):
        for tool in ("ours", "aws") if index % 2 == 0 else ("aws", "ours"):
            key_prefix = "%s-round-%d/" % (tool, index)
            # a new dump each round (renamed, not copied): the uploader sends a dump dir to the
            # first S3 prefix it was enqueued with, and would fold a later prefix into that one
            renamed = "%s-%s-round-%d" % (dump_dir, tool, index)
            os.rename(dump_dir, renamed)
            try:
                measured[tool].append(upload_once(tool, install, aws, moto, s3, bucket, renamed, key_prefix, home))
            finally:
                os.rename(renamed, dump_dir)
    errors = install.log_errors()
    if errors:
        raise BenchError("our uploader logged errors:\n%s" % "\n".join(errors[:5]))
    for rounds_of_tool in measured.values():
        for one in rounds_of_tool:
            one["rate"] = one["bytes"] / MIB / one["seconds"]
    return {
        "rounds": measured,
        "median": {tool: statistics.median(one["rate"] for one in runs) for tool, runs in measured.items()},
        "median_client_cpu": {
            tool: statistics.median(one["client_cpu"] for one in runs) for tool, runs in measured.items()
        },
        "median_server_cpu": {
            tool: statistics.median(one["server_cpu"] for one in runs) for tool, runs in measured.items()
        },
        "bytes": {tool: max(one["bytes"] for one in runs) for tool, runs in measured.items()},
        "files": len(regular_files(dump_dir)),
    }
