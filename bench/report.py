"""Machine facts and the Markdown of ``docs/benchmarks.md``."""

import os
import platform
import statistics
import subprocess
import sys
from importlib import metadata

from common import REPO_ROOT

NOISE_NOTE = (
    "The machine is shared with other sessions (builds, tests, containers) and is noisy: absolute "
    "numbers move between runs, sometimes by 2x. Compare the ratios, which come from this one run, "
    "with the compared variants interleaved round by round so that background load hits all of them."
)


def _first_line_with(path, prefix):
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith(prefix):
                    return line.split(":", 1)[-1].split("=", 1)[-1].strip().strip('"')
    except OSError:
        pass
    return "unknown"


def _package_version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _python_version(python):
    try:
        argv = [python, "-c", "import sys; print(sys.version.split()[0])"]
        proc = subprocess.run(argv, capture_output=True, timeout=30, check=False)
        return proc.stdout.decode().strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _git_revision():
    def git(*args):
        proc = subprocess.run(["git", "-C", REPO_ROOT, *args], capture_output=True, timeout=30, check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else ""

    try:
        commit = git("rev-parse", "--short", "HEAD") or "unknown"
        dirty = git("status", "--porcelain", "--", "roles/neuron_dump")  # untracked files count: new code
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (" + uncommitted changes to roles/neuron_dump" if dirty else "")


def machine_facts(hook_python):
    memory_kib = _first_line_with("/proc/meminfo", "MemTotal").split()[0]
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _first_line_with("/proc/cpuinfo", "model name"),
        "memory_gib": int(memory_kib) / (1024 * 1024) if memory_kib.isdigit() else 0,
        "kernel": platform.release(),
        "os": _first_line_with("/etc/os-release", "PRETTY_NAME"),
        "hook_python": hook_python,
        "hook_python_version": _python_version(hook_python),
        "bench_python": sys.executable,
        "bench_python_version": platform.python_version(),
        "boto3": _package_version("boto3"),
        "botocore": _package_version("botocore"),
        "awscli": _package_version("awscli"),
        "moto": _package_version("moto"),
        "revision": _git_revision(),
        "load_start": os.getloadavg(),
    }


def verdict(passed):
    return "**PASS**" if passed else "**MISS**"


def _ms(value):
    return "%.1f" % value


def _hook_table(rows):
    lines = ["| hook | calls | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(
            "| %s | %d | %s | %s | %s |"
            % (row["name"], row["calls"], _ms(row["p50_ms"]), _ms(row["p99_ms"]), _ms(row["max_ms"]))
        )
    return lines


def _header(facts, meta):
    load_start = ", ".join("%.2f" % value for value in facts["load_start"])
    load_end = ", ".join("%.2f" % value for value in meta["load_end"])
    lines = [
        "# Benchmarks",
        "",
        "Written by the benchmark run itself; do not edit by hand, rerun it. Method and options: the docstring of "
        "`bench/run.py`.",
        "",
        "- Command: `%s` (what `make bench` runs, with the venv on PATH)%s"
        % (meta["command"], ", **quick smoke mode: too few samples to judge the targets**" if meta["quick"] else ""),
        "- Date: %s; the whole run took %.0f s" % (meta["date"], meta["seconds"]),
        "- Code: %s" % facts["revision"],
        "- Machine: %d CPUs (%d usable), %s, %.1f GiB RAM; %s, Linux %s"
        % (
            facts["cpus"],
            facts["cpus_usable"],
            facts["cpu_model"],
            facts["memory_gib"],
            facts["os"],
            facts["kernel"],
        ),
        "- Load average (1/5/15 min): %s at the start, %s at the end" % (load_start, load_end),
        "- Hook interpreter (ours and the baseline): `%s` %s, started as `-IS`"
        % (facts["hook_python"], facts["hook_python_version"]),
        "- Bench, uploader CLI, fake_nrt, aws CLI and moto: `%s` %s; boto3 %s, botocore %s, awscli %s, moto %s"
        % (
            facts["bench_python"],
            facts["bench_python_version"],
            facts["boto3"],
            facts["botocore"],
            facts["awscli"],
            facts["moto"],
        ),
        "",
        "> " + NOISE_NOTE,
        "",
    ]
    return lines


def _blocking_section(result):
    baseline = result["rows"][0]
    lines = [
        "## 1. Hook blocking time seen by the runtime (vendor chain excluded)",
        "",
        "`tests/bed/fake_nrt.py` fails %d times per hook with 8 failing cores, i.e. %d calls per failure "
        "(8 core calls + 1 `--runtime-generated`), and reports how long it blocked in `waitpid` on each call. "
        "Our hook is a scratch install (config `hook.vendor_path` names a missing file, so no vendor chain; "
        "a fresh `%%d` dump dir per failure, `NEURON_RT_S3_CORE_DUMP_PREFIX` set). The baseline is a script "
        "`#!<hook interpreter> -IS` whose body is `pass`, exec'd the same way. One failure per hook is a "
        "warm-up and is not counted. Every one of our calls was checked afterwards to have written its record "
        "and its spool entry, with no error logged." % (result["runs"], result["calls_per_run"]),
        "",
    ]
    lines += _hook_table(result["rows"])
    lines += ["", "| ratio | value | target | result |", "|---|---:|---:|---|"]
    for row in result["rows"][1:]:
        ratio = row["p50_ms"] / baseline["p50_ms"]
        lines.append("| %s p50 / baseline p50 | %.2fx | <= 3x | %s |" % (row["name"], ratio, verdict(ratio <= 3.0)))
    lines += [
        "",
        "Hosts use `uploader.trigger: systemd` (or `auto`, which resolves to it): the path unit watches the spool, "
        "and the hook does nothing after the atomic rename of its entry, exactly like `none`. Both are measured; "
        "any difference between the two rows is noise.",
        "",
    ]
    return lines


def _naive_section(result):
    naive, ours = result["naive"], result["ours"]
    ratio = naive["p50_ms"] / ours["p50_ms"]
    lines = [
        "## 2. Against a naive hook that uploads synchronously",
        "",
        "The naive hook is a `sh` script that keeps a 100 MiB file in the dump dir and runs "
        "`aws --endpoint-url <moto> s3 cp --recursive --sse AES256 <dump dir> <prefix>/` before exiting; "
        "every call of it was checked to have put the 100 MiB object in S3. Ours runs with the same 100 MiB "
        "file in its dump dir and only enqueues. fake_nrt fails %d times per hook with one core (2 calls per "
        "failure), alternating naive/ours; the local S3 is `moto_server` on 127.0.0.1." % result["runs"],
        "",
    ]
    lines += _hook_table([naive, ours])
    lines += [
        "",
        "| ratio | value | target | result |",
        "|---|---:|---:|---|",
        "| naive p50 / ours p50 | %.0fx | >= 20x | %s |" % (ratio, verdict(ratio >= 20.0)),
        "",
        "With a handful of calls, p99 is in effect the slowest call.",
        "",
    ]
    return lines


def _throughput_rows(result):
    lines = [
        "| uploader | MiB/s per round (run order) | median MiB/s | median client CPU s | median moto CPU s |",
        "|---|---|---:|---:|---:|",
    ]
    names = {"ours": "ours (`neuron-core-dump upload`)", "aws": "`aws s3 cp --recursive`"}
    for tool in ("ours", "aws"):
        lines.append(
            "| %s | %s | %.1f | %.1f | %.1f |"
            % (
                names[tool],
                ", ".join("%.1f" % one["rate"] for one in result["rounds"][tool]),
                result["median"][tool],
                result["median_client_cpu"][tool],
                result["median_server_cpu"][tool],
            )
        )
    return lines


def _spread(rounds):
    rates = [one["rate"] for one in rounds]
    return (max(rates) - min(rates)) / statistics.median(rates)


def _throughput_section(result):
    ratio = result["median"]["ours"] / result["median"]["aws"]
    lines = [
        "## 3. Uploader throughput",
        "",
        "One dump dir of %d files, %.1f MiB (1 x 100 MiB, 4 x 20 MiB, 50 x ~400 KiB, 100 x 1-14 KiB, plus our "
        "hook records), random content. Ours: the hook is invoked once with `--local-output-dir` and "
        "`--s3-output-prefix` (spool entry), then `neuron-core-dump upload` runs against the scratch install "
        "(defaults: 8 MiB multipart threshold and chunks, 10 parallel requests, SSE AES256, a SHA-256 checksum "
        "sent with every object and part, manifest written last). The other: `aws s3 cp --recursive --sse AES256` "
        "of the same dir (its defaults: 8 MiB / 8 MiB / 10, botocore's default CRC32 checksum). Same moto "
        "endpoint, a new prefix per round, the two alternating; each time is the whole process, start-up "
        "included. After every upload the objects were listed and every local file was found with its size "
        "(ours also has its manifest), then deleted. CPU columns: the uploader process (for ours including the "
        "one hook call that enqueues) and the moto server, during that upload."
        % (result["files"], result["bytes"]["aws"] / (1024 * 1024)),
        "",
    ]
    lines += _throughput_rows(result)
    paired = [ours["rate"] / aws["rate"] for ours, aws in zip(result["rounds"]["ours"], result["rounds"]["aws"])]
    spread = max(_spread(result["rounds"][tool]) for tool in ("ours", "aws"))
    lines += [
        "",
        "| ratio | value | target | result |",
        "|---|---:|---:|---|",
        "| ours / aws median MiB/s | %.2fx | >= 1.0x | %s |" % (ratio, verdict(ratio >= 1.0)),
        "",
        "Per round (ours / aws of the same round): %s. The rounds of one uploader differ by up to %.0f%% "
        "(max - min over median); a difference smaller than that is within this machine's noise."
        % (", ".join("%.2fx" % value for value in paired), spread * 100),
        "",
        "moto is one Python process sharing the CPUs with the uploader: both uploaders are limited by it as "
        "much as by themselves, so this compares the clients on this endpoint, not what S3 would sustain.",
        "",
    ]
    return lines


def flood_section(result):
    drain = result["drain"]
    victims = [run["victim_seconds"] for run in result["runs"]]
    lines = [
        "## 4. A flood of one user against another user's dump",
        "",
        "%s calls the hook %d times, 16 at a time, each into its own dump dir and S3 prefix; 5 s after the "
        "flood starts, %s's 2 x 2 dump fails (2 ranks x (2 per-core calls + 1 `--runtime-generated` call) into "
        "one dir). An uploader service runs `neuron-core-dump upload --wait` whenever the spool has entries "
        "(what the systemd path unit does), as the service unit runs it: nice 10, in a session of its own "
        "(systemd calls setsid() for every service; with the kernel's autogroup scheduling, on here, a session's "
        "CPU share does not grow with its process count), with the product's defaults (4 "
        "dumps at once, 50 per uid per pass, `settle_seconds` 2). Victim latency: from its last hook call "
        "returning until its manifest (written last) is in S3 and names every file of its dir, polled every "
        "50 ms. `status --json` (a whole process) runs every 0.5 s "
        "throughout, on the same 2 CPUs as the 16 hooks, the uploader and moto. %d repeat(s), a fresh install "
        "each."
        % (
            "User A (uid %d)" % 61101 if result["two_users"] else "The bench user",
            result["runs"][0].get("calls", 2000),
            "user B (uid %d)" % 61102 if result["two_users"] else "the same user's (not root: one uid only)",
            result["repeats"],
        ),
        "",
        "| repeat | victim in S3 after s | flood hook calls took s | flood dumps in S3 by then | status samples "
        "| status unhealthy |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for index, run in enumerate(result["runs"]):
        lines.append(
            "| %d | %.2f | %.1f | %d | %d | %d |"
            % (
                index + 1,
                run["victim_seconds"],
                run["flood_seconds"],
                run["flood_uploaded"],
                len(run["status_ms"]),
                run["status_unhealthy"],
            )
        )
    ratio = drain["ours_rate"] / drain["aws_rate"]
    lines += [
        "",
        "| measure | value | target | result |",
        "|---|---:|---:|---|",
        "| victim's dump in S3 after its failure, median of %d | %.2f s | <= 10 s | %s |"
        % (len(victims), result["victim_median"], verdict(result["victim_median"] <= 10)),
        "| `status` wall time p50 / p99 / max (%d samples) | %.0f / %.0f / %.0f ms | < 200 ms | %s |"
        % (
            result["status_samples"],
            result["status_p50"],
            result["status_p99"],
            result["status_max"],
            verdict(result["status_p99"] < 200),
        ),
        "| the interpreter alone (`python3 -IS -c pass`) right after each `status`, p50 / p99 / max | "
        "%.0f / %.0f / %.0f ms | | |" % (result["baseline_p50"], result["baseline_p99"], result["baseline_max"]),
        "| `status` wall time p50 / max, a spool of >= %d entries, flood and uploader stopped (%d samples) "
        "| %.0f / %.0f ms | < 200 ms | %s |"
        % (
            result["idle_depth"],
            result["idle_samples"],
            result["idle_status_p50"],
            result["idle_status_max"],
            verdict(result["idle_status_max"] < 200),
        ),
        "| `status` unhealthy during the flood | %d of %d | 0 | %s |"
        % (result["status_unhealthy"], result["status_samples"], verdict(result["status_unhealthy"] == 0)),
        "| drain: %d dumps of %d files (%.0f KiB), one `upload --wait` | %.1f dumps/s (%.1f s) | >= 10 dumps/s | %s |"
        % (
            drain["dumps"],
            drain["files"],
            drain["kib"],
            drain["ours_rate"],
            drain["ours_seconds"],
            verdict(drain["ours_rate"] >= 10),
        ),
        "| same dumps, `aws s3 cp --recursive`, 10 processes at a time | %.1f dumps/s (%.1f s) | | |"
        % (drain["aws_rate"], drain["aws_seconds"]),
        "| ours / aws | %.2fx | >= 1/1.5 | %s |" % (ratio, verdict(ratio >= 1 / 1.5)),
        "",
        "Worst case, one repeat: the uploader at nice 10 in the flood's own session (as on a kernel without "
        "autogroup scheduling and without the cgroup CPU controller, where nice is weighed against every "
        "process), the 16 hooks at nice 0 saturating both CPUs: the victim's dump took %.2f s and %d flood "
        "dumps reached S3 while the flood ran; the uploader then gets a few percent of the CPU. On a host with "
        "more cores than hooks in flight this does not arise."
        % (result["niced"]["victim_seconds"], result["niced"]["flood_uploaded"]),
        "",
        "The status p99 is measured while 16 hooks, the uploader and moto share these 2 CPUs: it is the "
        "start-up of a Python process under that load as much as status' own work (no spool walk: above 200 "
        "entries it answers from the uploader's summary); the interpreter-alone row is that start-up.",
        "",
    ]
    return lines


def render(facts, meta, blocking, naive, throughput, flood):
    lines = _header(facts, meta)
    lines += _blocking_section(blocking)
    lines += _naive_section(naive)
    lines += _throughput_section(throughput)
    lines += flood_section(flood)
    return "\n".join(lines).rstrip() + "\n"


def summary_lines(blocking, naive, throughput, flood):
    """The verdicts for the console."""
    baseline = blocking["rows"][0]
    lines = []
    for row in blocking["rows"][1:]:
        ratio = row["p50_ms"] / baseline["p50_ms"]
        lines.append(
            "hook p50 %s: %.1f ms vs baseline %.1f ms = %.2fx (target <= 3x)"
            % (row["name"], row["p50_ms"], baseline["p50_ms"], ratio)
        )
    ratio = naive["naive"]["p50_ms"] / naive["ours"]["p50_ms"]
    lines.append(
        "naive p50 %.0f ms vs ours %.1f ms = %.0fx (target >= 20x)"
        % (naive["naive"]["p50_ms"], naive["ours"]["p50_ms"], ratio)
    )
    ours, aws = throughput["median"]["ours"], throughput["median"]["aws"]
    lines.append("upload median ours %.1f MiB/s vs aws %.1f MiB/s = %.2fx (target >= 1.0x)" % (ours, aws, ours / aws))
    lines.append(
        "flood: victim in S3 after %.2f s median (target <= 10 s); status p99 %.0f ms (target < 200 ms); "
        "drain %.1f dumps/s vs aws %.1f (target >= 10)"
        % (flood["victim_median"], flood["status_p99"], flood["drain"]["ours_rate"], flood["drain"]["aws_rate"])
    )
    return lines
