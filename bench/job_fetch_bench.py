"""Benchmark: fetching a 3-host job of ~200 MiB with ``fetch_job.yml`` against ``aws s3 cp --recursive``.

``make bench`` runs it (``bench/run.py``), or alone: ``python3 bench/job_fetch_bench.py`` with the
venv on PATH (boto3, ``aws``, ``moto_server``, ``ansible-playbook``). It writes its section of
``docs/benchmarks.md`` (between the ``job-fetch-bench`` markers) or prints it with ``--output -``.

The job is laid out in a local ``moto_server`` as the uploader lays it out: one shared
prefix; each host's files directly below it (every name carries the instance id, as the
runtime's do); one ``<instance id>-manifest.json`` per host, with the uploader's v2 fields
(name, key, size, sha256). It is written with boto3 here, not by the uploader, so the
benchmark measures only the fetch. Each host's dump is the uploader benchmark's mixed
layout at a third of the size.

Both sides are timed as whole processes, with a fresh destination each round, alternating.
``aws s3 cp`` only copies. ``fetch_job.yml`` also lists and checks the manifests, hashes
every byte (sha256) and renames each file into place; Ansible's own start-up is included.
A third row runs the same code (plugin_utils/job_fetch.py) from a bare ``python3`` process,
to show how much of the playbook's time is Ansible's start-up rather than the transfer.
Afterwards both trees are compared with the manifests, and a mismatch is an error, not a
number.
"""

import argparse
import datetime
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import sections
from common import AWS_ENV, MIB, REPO_ROOT, BenchError, base_env, find_tool, run_bounded
from s3local import MotoServer

JOB = "dt-20260301-101500-cid-00000000000000aa"
HOSTS = ["i-0000000000000000%s" % c for c in "abc"]
KIB = 1024
TIMEOUT_SECONDS = 300


def host_layout(iid):
    """{name: size}, about 67 MiB: 1 x 34 MiB, 4 x 6.5 MiB, 50 x ~135 KiB, 100 small."""
    layout = {"%s-core-nd0-nc0.bin" % iid: 34 * MIB}
    layout.update({"%s-hbm-nd0-%d.bin" % (iid, i): 6 * MIB + 512 * KIB for i in range(4)})
    layout.update({"%s-trace-%02d.bin" % (iid, i): 135 * KIB + i * 997 for i in range(50)})
    layout.update({"%s-reg-%03d.txt" % (iid, i): 1 * KIB + i * 131 for i in range(100)})
    return layout


def put_job(client, bucket):
    """Upload the three hosts' files and manifests; returns {host: {name: sha256}}."""
    key_prefix = "neuron/" + JOB
    digests = {}
    for iid in HOSTS:
        files = []
        digests[iid] = {}
        for name, size in sorted(host_layout(iid).items()):
            data = os.urandom(size)
            digest = hashlib.sha256(data).hexdigest()
            key = "%s/%s" % (key_prefix, name)
            client.put_object(Bucket=bucket, Key=key, Body=data)
            files.append({"name": name, "key": key, "size": size, "sha256": digest})
            digests[iid][name] = digest
        manifest = {
            "schema": "neuron-core-dump/manifest/v2",
            "instance_id": iid,
            "hostname": "bench-" + iid,
            "dump_dir": "/var/lib/neuron-dumps/" + JOB,
            "s3_prefix": "s3://%s/%s" % (bucket, key_prefix),
            "files": files,
            "skipped": [],
        }
        client.put_object(
            Bucket=bucket, Key="%s/%s-manifest.json" % (key_prefix, iid), Body=json.dumps(manifest).encode()
        )
    return digests


def _sha(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_tree(found, digests):
    """``found``: {host: directory} of the downloaded files; raise unless every file matches."""
    for iid, names in digests.items():
        for name, digest in names.items():
            if _sha(os.path.join(found[iid], name)) != digest:
                raise BenchError("%s/%s does not match after the fetch" % (iid, name))


def run_aws(server, bucket, dest, env):
    argv = [find_tool("aws"), "--endpoint-url", server.url, "s3", "cp", "--recursive", "--only-show-errors"]
    argv += ["s3://%s/neuron/%s/" % (bucket, JOB), dest]
    code, _out, err, secs = run_bounded(argv, TIMEOUT_SECONDS, env)
    if code != 0:
        raise BenchError("aws s3 cp failed: %s" % err[-400:].decode(errors="replace"))
    return secs


def run_ours(server, bucket, dest, env):
    argv = [find_tool("ansible-playbook"), "neuron_ops.core_dump.fetch_job"]
    argv += ["-e", "neuron_core_dump_job_prefix=s3://%s/neuron/%s" % (bucket, JOB)]
    argv += ["-e", "neuron_core_dump_fetch_dest=%s" % dest, "-e", "neuron_core_dump_s3_endpoint_url=%s" % server.url]
    argv += ["-e", "neuron_core_dump_s3_addressing_style=path", "-e", "neuron_core_dump_fetch_threads=10"]
    argv += ["-e", json.dumps({"neuron_core_dump_expected_hosts": HOSTS})]
    code, out, err, secs = run_bounded(argv, TIMEOUT_SECONDS, env)
    if code != 0:
        raise BenchError("fetch_job.yml failed (%d): %s" % (code, (out + err)[-800:].decode(errors="replace")))
    return secs


ENGINE = """
import sys
from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils import job_fetch, job_source_s3
url, bucket, dest = sys.argv[1:4]
client = job_source_s3.client(endpoint_url=url, addressing_style="path", threads=10)
source = job_source_s3.S3Source(client, bucket, "neuron/%s")
sys.exit(0 if job_fetch.fetch(source, dest, "%s", threads=10)["complete"] else 1)
""" % (JOB, JOB)


def run_engine(server, bucket, dest, env):
    env = dict(env, PYTHONPATH=os.path.join(REPO_ROOT, ".bed", "collections"))
    code, out, err, secs = run_bounded([sys.executable, "-c", ENGINE, server.url, bucket, dest], TIMEOUT_SECONDS, env)
    if code != 0:
        raise BenchError("the fetch engine failed (%d): %s" % (code, (out + err)[-800:].decode(errors="replace")))
    return secs


def bench_job_fetch(rounds, command):
    """Run the benchmark; returns its Markdown section (without the markers)."""
    started = time.monotonic()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    temp = tempfile.mkdtemp(prefix="ncd-fetch-bench-")
    env = dict(base_env(temp), **AWS_ENV)
    env["PATH"] = os.path.dirname(sys.executable) + ":" + env["PATH"]
    env["ANSIBLE_COLLECTIONS_PATH"] = os.path.join(REPO_ROOT, ".bed", "collections")
    env["ANSIBLE_LOCALHOST_WARNING"] = "false"
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "false"
    link = os.path.join(REPO_ROOT, ".bed", "collections", "ansible_collections", "neuron_ops", "core_dump")
    if not os.path.exists(link):
        raise BenchError("%s missing: run the unit tests once (tests/conftest.py links the checkout)" % link)
    server = MotoServer(os.path.join(temp, "moto.log"), env).start()
    try:
        client = server.client()
        bucket = "bench-job-fetch"
        client.create_bucket(Bucket=bucket)
        digests = put_job(client, bucket)
        total = sum(sum(host_layout(iid).values()) for iid in HOSTS)
        times = {"aws": [], "ours": [], "engine": []}
        for index in range(rounds):
            aws_dest = os.path.join(temp, "aws-%d" % index)
            times["aws"].append(run_aws(server, bucket, aws_dest, env))
            check_tree({iid: aws_dest for iid in HOSTS}, digests)
            ours_dest = os.path.join(temp, "ours-%d" % index)
            times["ours"].append(run_ours(server, bucket, ours_dest, env))
            check_tree({iid: os.path.join(ours_dest, JOB, iid) for iid in HOSTS}, digests)
            engine_dest = os.path.join(temp, "engine-%d" % index)
            times["engine"].append(run_engine(server, bucket, engine_dest, env))
            check_tree({iid: os.path.join(engine_dest, JOB, iid) for iid in HOSTS}, digests)
            for done in (aws_dest, ours_dest, engine_dest):
                shutil.rmtree(done)
    finally:
        server.stop()
        shutil.rmtree(temp, ignore_errors=True)
    aws, ours, engine = (statistics.median(times[name]) for name in ("aws", "ours", "engine"))
    lines = [
        "## 7. Fetching one job: fetch_job.yml against aws s3 cp --recursive",
        "",
        "Written by `%s` (%s; this benchmark took %.0f s; load average %s at the end). 3 hosts, %d files,"
        " %.0f MiB, local moto_server; median of %d rounds (whole processes, alternating, a fresh"
        " destination each round; both trees checked against the manifests afterwards)."
        % (
            command,
            date,
            time.monotonic() - started,
            ", ".join("%.2f" % x for x in os.getloadavg()),
            sum(len(host_layout(iid)) for iid in HOSTS),
            total / MIB,
            rounds,
        ),
        "",
        "| tool | median s | MiB/s | rounds (s) |",
        "|---|---|---|---|",
        "| aws s3 cp --recursive (copy only) | %.2f | %.1f | %s |"
        % (aws, total / MIB / aws, ", ".join("%.2f" % t for t in times["aws"])),
        "| fetch_job.yml (10 threads, sha256 of every byte, Ansible start-up) | %.2f | %.1f | %s |"
        % (ours, total / MIB / ours, ", ".join("%.2f" % t for t in times["ours"])),
        "| the same fetch from a bare python3 (no Ansible; same code, same checks) | %.2f | %.1f | %s |"
        % (engine, total / MIB / engine, ", ".join("%.2f" % t for t in times["engine"])),
        "",
        "Speed-up of ours over aws: **%.2fx** with fetch_job.yml (target >= 1.0x, issue 11); %.2fx without"
        " Ansible's start-up." % (aws / ours, aws / engine),
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=sections.DEFAULT_OUTPUT, help="Markdown to update ('-' = stdout)")
    args = parser.parse_args(argv)
    command = " ".join(["python3", "bench/job_fetch_bench.py", *(sys.argv[1:] if argv is None else argv)])
    text = bench_job_fetch(args.rounds, command)
    sections.write_section("job-fetch-bench", sections.wrap("job-fetch-bench", text), args.output)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.stderr.write("bench: %s\n" % exc)
        sys.exit(1)
