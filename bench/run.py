"""Benchmarks of the neuron-dump hook and uploader; writes ``docs/benchmarks.md``.

Run ``make bench``, i.e. ``python3 bench/run.py`` with the repo's venv on PATH (it needs
boto3, the ``aws`` CLI and ``moto_server`` from there). In one run, on this machine, it
measures (1) how long the runtime stand-in ``tests/bed/fake_nrt.py`` blocks on each call
of our hook, vendor chain excluded, against a hook that is only ``python3 -IS`` running
``pass`` (p50/p99 over 225 calls each); (2) the same against a naive hook that uploads a
100 MiB dump synchronously with ``aws s3 cp``; (3) ``neuron-core-dump upload`` throughput
on a ~200 MiB dump of mixed file sizes against ``aws s3 cp --recursive``, both to a local
``moto_server``; (4) a flood: one user's 2,000 hook calls (16 in parallel) while another
user's 2 x 2 dump fails 5 s in -- that dump's latency to S3 and ``status`` latency
throughout (``--flood-repeats``, default 5) -- and the drain rate of small dumps against
``aws s3 cp`` 10 at a time (see ``bench/flood_bench.py``); (7) fetching a 3-host job of ~200 MiB
with ``fetch_job.yml`` against ``aws s3 cp --recursive`` (``bench/job_fetch_bench.py``, its own
section of the file; section 5, the fleet, is ``--fleet``). Our code runs from a scratch
install in a temp dir, as the current user (benchmark 4 as root: two more uids), with
``uploader.trigger`` ``none`` (and ``systemd``, what hosts use: neither spawns anything,
there is no systemd here); nothing on the host is touched, and the temp dir (unless
``--keep-temp``, to read the logs) and the server are removed however the run ends.
Benchmarks 1-3 take 1-3 minutes here, depending on the machine's load; benchmark 4 about
a minute per repeat.
``--quick`` is a ~30 s smoke run with few samples; it prints the report instead of
overwriting the committed one (unless ``--output`` says otherwise).
Benchmarks are not tests: the exit status is 0 whether or not a target is met; it is 1
only when something broke (a hook failed, an upload is incomplete, a server would not
start), with the reason on stderr.
"""

import argparse
import contextlib
import datetime
import os
import shutil
import signal
import sys
import tempfile
import time

from common import BenchError, find_tool, hook_interpreter, write_random_file
from fleet_bench import main as fleet_main
from flood_bench import bench_flood
from hook_bench import (
    CALLS_PER_RUN,
    NAIVE_DUMP_BYTES,
    Variant,
    bench_blocking,
    bench_naive,
    write_baseline_hook,
    write_naive_hook,
)
from job_fetch_bench import bench_job_fetch
from report import flood_section, machine_facts, render, summary_lines
from s3local import MotoServer
from scratch import ScratchInstall
from sections import DEFAULT_OUTPUT, keep_sections, wrap, write_section
from upload_bench import bench_throughput

TIME_LIMIT_SECONDS = 300 + 90 * 5  # benchmarks 1-3, plus about 90 s per flood repeat
# (fake_nrt failures per hook in benchmark 1, failures per hook in 2, upload rounds per tool in 3)
FULL_SIZES = (25, 3, 3)
QUICK_SIZES = (2, 1, 1)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python3 bench/run.py", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run, not reference numbers")
    parser.add_argument(
        "--output",
        help="where to write the Markdown ('-' = stdout; default %s, or stdout with --quick)" % "docs/benchmarks.md",
    )
    parser.add_argument(
        "--flood-repeats", type=int, default=None, help="repeats of benchmark 4 (default 5; 1 with --quick)"
    )
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir (logs, scratch installs) to debug")
    parser.add_argument("--fleet", action="store_true", help="also run bench/fleet_bench.py (containers; 30+ min)")
    parser.add_argument(
        "--only-flood",
        action="store_true",
        help="run benchmark 4 alone and print its section (default output '-'; paste it into docs/benchmarks.md)",
    )
    return parser.parse_args(argv)


def progress(message):
    sys.stderr.write("bench: %s\n" % message)
    sys.stderr.flush()


def _exit_on_sigterm(signum, _frame):
    progress("stopped by SIGTERM; cleaning up")
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop moto and remove the temp dir


def run_blocking(tmp, hook_python, runs):
    home = os.path.join(tmp, "home")
    stderr_log = os.path.join(tmp, "fake_nrt-blocking.log")
    baseline_dir = os.path.join(tmp, "baseline")
    variants = [Variant("baseline (`-IS` + `pass`)", write_baseline_hook(baseline_dir, hook_python), baseline_dir)]
    for trigger in ("none", "systemd"):
        install = ScratchInstall(os.path.join(tmp, "ours-" + trigger), hook_python, sys.executable, trigger=trigger)
        variants.append(Variant("ours, trigger `%s`" % trigger, install.hook, install.dumps, install))
    progress("1/3 hook blocking time: %d failures x %d calls per hook" % (runs, CALLS_PER_RUN))
    rows = bench_blocking(variants, runs, home, stderr_log)
    return {"rows": rows, "runs": runs, "calls_per_run": CALLS_PER_RUN}


def run_naive(tmp, hook_python, moto, s3, runs):
    home = os.path.join(tmp, "home")
    source = os.path.join(tmp, "data", "core-100MiB.bin")
    os.makedirs(os.path.dirname(source))
    write_random_file(source, NAIVE_DUMP_BYTES)
    bucket = "bench-naive"
    s3.create_bucket(Bucket=bucket)
    naive_hook = write_naive_hook(os.path.join(tmp, "naive", "bin"), find_tool("aws"), moto.url)
    naive_dumps = os.path.join(tmp, "naive", "dumps")
    os.makedirs(naive_dumps)
    naive = Variant("naive `aws s3 cp` (100 MiB)", naive_hook, naive_dumps)
    install = ScratchInstall(os.path.join(tmp, "ours-naive"), hook_python, sys.executable, s3_endpoint=moto.url)
    ours = Variant("ours (100 MiB in the dump dir)", install.hook, install.dumps, install)
    progress("2/3 against a naive synchronous uploader: %d failures x 2 calls per hook" % runs)
    naive_row, ours_row = bench_naive(
        naive, ours, runs, home, os.path.join(tmp, "fake_nrt-naive.log"), s3, bucket, source
    )
    return {"naive": naive_row, "ours": ours_row, "runs": runs}


def run_throughput(tmp, hook_python, moto, s3, rounds):
    bucket = "bench-throughput"
    s3.create_bucket(Bucket=bucket)
    install = ScratchInstall(os.path.join(tmp, "ours-upload"), hook_python, sys.executable, s3_endpoint=moto.url)
    dump_dir = os.path.join(install.dumps, "dt-20260101-000000-cid-0000000000000000")
    progress("3/3 uploader throughput: %d round(s) per uploader" % rounds)
    home = os.path.join(tmp, "home")
    return bench_throughput(install, find_tool("aws"), moto, s3, bucket, dump_dir, rounds, home)


def run_all(tmp, sizes, flood_repeats, quick=False):
    """All four benchmarks, moto only up for those that need it."""
    blocking_runs, naive_runs, upload_rounds = sizes
    hook_python = hook_interpreter()
    facts = machine_facts(hook_python)
    os.makedirs(os.path.join(tmp, "home"))
    blocking = run_blocking(tmp, hook_python, blocking_runs)
    with contextlib.ExitStack() as stack:
        moto = MotoServer(os.path.join(tmp, "moto.log"), {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        stack.callback(moto.stop)
        progress("starting moto_server on %s" % moto.url)
        moto.start()
        s3 = moto.client()
        naive = run_naive(tmp, hook_python, moto, s3, naive_runs)
        throughput = run_throughput(tmp, hook_python, moto, s3, upload_rounds)
        flood = bench_flood(
            tmp, hook_python, sys.executable, moto, s3, flood_repeats, os.path.join(tmp, "home"), progress, quick
        )
    return facts, blocking, naive, throughput, flood


def run_flood_only(tmp, flood_repeats, quick=False):
    """Benchmark 4 alone (about 90 s per repeat), moto up for it only."""
    os.makedirs(os.path.join(tmp, "home"))
    with contextlib.ExitStack() as stack:
        moto = MotoServer(os.path.join(tmp, "moto.log"), {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        stack.callback(moto.stop)
        progress("starting moto_server on %s" % moto.url)
        moto.start()
        return bench_flood(
            tmp, hook_interpreter(), sys.executable, moto, moto.client(), flood_repeats, os.path.join(tmp, "home"),
            progress, quick,
        )  # fmt: skip


def write_output(text, output):
    if output == "-":
        sys.stdout.write(text)
        return
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    temp = output + ".tmp"
    with open(temp, "w") as handle:
        handle.write(text)
    os.replace(temp, output)
    progress("wrote %s" % output)


def _in_temp_dir(args, work):
    """``(work(tmp), None)`` in a fresh temp dir, or ``(None, exit status)`` when it broke or was
    interrupted; the dir is removed either way unless ``--keep-temp``."""
    tmp = tempfile.mkdtemp(prefix="ncd-bench-")
    try:
        return work(tmp), None
    except BenchError as exc:
        progress("FAILED: %s" % exc)
        return None, 1
    except KeyboardInterrupt:
        progress("interrupted")
        return None, 130
    finally:
        if args.keep_temp:
            progress("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.only_flood:
        return main_flood_only(args, sys.argv[1:] if argv is None else argv)
    output = args.output or ("-" if args.quick else DEFAULT_OUTPUT)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.monotonic()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    repeats = args.flood_repeats or (1 if args.quick else 5)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    results, code = _in_temp_dir(args, lambda tmp: run_all(tmp, sizes, repeats, args.quick))
    if code is not None:
        return code
    facts, blocking, naive, throughput, flood = results
    seconds = time.monotonic() - started
    meta = {
        "command": " ".join(["python3", "bench/run.py", *(sys.argv[1:] if argv is None else argv)]),
        "quick": args.quick,
        "date": date,
        "seconds": seconds,
        "load_end": os.getloadavg(),
    }
    write_output(keep_sections(render(facts, meta, blocking, naive, throughput, flood), output), output)
    try:
        fetch = bench_job_fetch(1 if args.quick else 3, meta["command"])
    except BenchError as exc:
        progress("FAILED: job fetch: %s" % exc)
        return 1
    write_section("job-fetch-bench", wrap("job-fetch-bench", fetch), output, progress)
    for line in summary_lines(blocking, naive, throughput, flood):
        progress(line)
    if seconds > TIME_LIMIT_SECONDS:
        progress("note: the run took %.0f s, more than the %d s it should" % (seconds, TIME_LIMIT_SECONDS))
    if args.fleet:
        return fleet_main(["--output", output])
    return 0


def main_flood_only(args, argv):
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    started = time.monotonic()
    repeats = args.flood_repeats or (1 if args.quick else 5)
    flood, code = _in_temp_dir(args, lambda tmp: run_flood_only(tmp, repeats, args.quick))
    if code is not None:
        return code
    header = "<!-- %s, %s, %.0f s, load average at the end %.1f / %.1f / %.1f -->" % (
        " ".join(["python3", "bench/run.py", *argv]),
        date,
        time.monotonic() - started,
        *os.getloadavg(),
    )
    write_output("\n".join([header, *flood_section(flood)]).rstrip() + "\n", args.output or "-")
    progress(
        "flood: victim in S3 after %.2f s median (target <= 10 s); status p99 %.0f ms (target < 200 ms); "
        "drain %.1f dumps/s vs aws %.1f (target >= 10)"
        % (flood["victim_median"], flood["status_p99"], flood["drain"]["ours_rate"], flood["drain"]["aws_rate"])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
