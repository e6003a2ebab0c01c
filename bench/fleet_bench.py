"""Fleet-scale benchmark: the playbooks on N converged Debian 12 containers, as ratios to ping.

Run ``python3 bench/fleet_bench.py`` with the repo's venv on PATH (``make bench`` runs the
other benchmarks; ``python3 bench/run.py --fleet`` runs this one too). In one run, on this
machine, with the podman connection and ``forks`` = the number of hosts:

- ``site.yml`` on fresh hosts and again on the same, converged hosts, at each of
  ``--site-sizes`` (default 1 and 10 hosts);
- at each of ``--sizes`` (default 5, 10, 20 converged hosts): ``ansible -m ping``,
  ``verify.yml``, a builtin-only verification of the same facts
  (``bench/fleet/verify_builtin.yml``: stat/slurp/command/assert), ``disable.yml``,
  ``enable.yml``.

Each time is the wall time of the whole ``ansible``/``ansible-playbook`` process, reported
with its ratio to ``ping`` on the same number of hosts, and per host. The containers
(``ncd-bench-fleet-NN``, the bed's Debian 12 image, the bed's repositories and S3) are
removed however the run ends. The result replaces the fleet section of
``docs/benchmarks.md`` (between the ``fleet-bench`` markers; the rest is ``bench/run.py``'s).
Only measures: exit 1 means something broke (a playbook failed), not a missed target.
"""

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import sections
from common import REPO_ROOT, BenchError

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
BUILTIN_VERIFY = os.path.join(BENCH_DIR, "fleet", "verify_builtin.yml")
DEFAULT_OUTPUT = sections.DEFAULT_OUTPUT
BEGIN, END = sections.markers("fleet-bench")
NAME = "ncd-bench-fleet-%02d"  # not ncd-<scenario>-*: molecule scenarios own those names
BUCKET = "ncd-bench-dumps"
PLAYBOOK_TIMEOUT = 3600


def progress(message):
    sys.stderr.write("fleet-bench: %s\n" % message)
    sys.stderr.flush()


class Fleet:
    """The bed (repositories, S3) and N systemd containers, with an inventory over them."""

    def __init__(self, tmp, count):
        self.tmp = tmp
        self.hosts = [NAME % (i + 1) for i in range(count)]
        self.inventory = os.path.join(tmp, "inventory.yml")
        self.env = None
        self.bed_started = False

    def __enter__(self):
        run(["python3", "tests/bed/bedctl.py", "build"], os.environ)
        run(["python3", "tests/bed/bedctl.py", "up"], os.environ)
        self.bed_started = True
        bed = read_env(os.path.join(REPO_ROOT, ".bed", "state", "bed.env"))
        image = bed["NCD_IMAGE_BOOKWORM"]
        for host in self.hosts:
            subprocess.run(["podman", "rm", "-f", "-t", "0", host], capture_output=True, check=False)
            run(
                [
                    "podman",
                    "run",
                    "-d",
                    "--name",
                    host,
                    "--hostname",
                    host,
                    "--systemd=always",
                    "--network",
                    "host",
                    image,
                    "/lib/systemd/systemd",
                ],
                os.environ,
            )
        self.env = dict(
            os.environ,
            **bed,
            ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO_ROOT, ".bed", "collections"),
            ANSIBLE_PYTHON_INTERPRETER="auto_silent",
            ANSIBLE_HOST_KEY_CHECKING="false",
            ANSIBLE_STDOUT_CALLBACK="default",
            ANSIBLE_DISPLAY_SKIPPED_HOSTS="false",
            ANSIBLE_DISPLAY_OK_HOSTS="false",
            ANSIBLE_RETRY_FILES_ENABLED="false",
        )
        with open(self.inventory, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "all": {
                        "vars": {
                            "ansible_connection": "containers.podman.podman",
                            "neuron_tools_repo_url": bed["NCD_BED_HTTP"] + "/neuron/apt",
                            "neuron_dump_s3_endpoint_url": bed["NCD_BED_S3"],
                            "neuron_dump_s3_region": "us-east-1",
                            "dump_env_s3_prefix": "s3://%s/neuron/dt-%%d-cid-%%c" % BUCKET,
                            "ncd_bed_bucket": BUCKET,
                            "neuron_dump_config_extra": {"uploader": {"imds_enabled": False}},
                        },
                        "hosts": {host: {} for host in self.hosts},
                    }
                },
                handle,
            )
        progress("preparing %d containers" % len(self.hosts))
        self.playbook(self.hosts, os.path.join(REPO_ROOT, "molecule", "resources", "prepare.yml"))
        self.playbook(self.hosts, os.path.join(REPO_ROOT, "demo", "bed-credentials.yml"))
        return self

    def __exit__(self, *exc):
        for host in self.hosts:
            subprocess.run(["podman", "rm", "-f", "-t", "0", host], capture_output=True, check=False)
        if self.bed_started:
            subprocess.run(["python3", "tests/bed/bedctl.py", "down"], cwd=REPO_ROOT, capture_output=True, check=False)

    def playbook(self, hosts, playbook, *extra):
        # The playbooks take their hosts from neuron_core_dump_hosts; verify.yml's report play
        # runs on the implicit localhost, which a --limit must name.
        pattern = ",".join(hosts)
        argv = ["ansible-playbook", "-i", self.inventory, "-f", str(len(hosts)), "--limit", pattern + ",localhost"]
        argv += ["-e", "neuron_core_dump_hosts=" + pattern]
        return timed([*argv, *extra, playbook], self.env, self.log(playbook, hosts))

    def ping(self, hosts):
        argv = ["ansible", "-i", self.inventory, "-f", str(len(hosts)), ",".join(hosts), "-m", "ansible.builtin.ping"]
        return timed(argv, self.env, self.log("ping", hosts))

    def log(self, name, hosts):
        return os.path.join(self.tmp, "%s-%d-%d.log" % (os.path.basename(name), len(hosts), time.monotonic_ns()))


def read_env(path):
    values = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("export ") and "=" in line:
                key, value = line[len("export ") :].strip().split("=", 1)
                values[key] = value.strip("'\"")
    return values


def run(argv, env):
    result = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchError("%s failed: %s" % (" ".join(argv[:3]), (result.stderr or result.stdout)[-2000:]))
    return result.stdout


def timed(argv, env, log):
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            code = proc.wait(timeout=PLAYBOOK_TIMEOUT)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    seconds = time.monotonic() - started
    if code != 0:
        with open(log, encoding="utf-8", errors="replace") as handle:
            raise BenchError("%s failed (exit %d), log %s:\n%s" % (argv[-1], code, log, handle.read()[-3000:]))
    return seconds


def measure(fleet, sizes, site_sizes, report_dir):
    """Every measurement, in the order described in the module docstring."""
    results = {"site": [], "ops": []}
    site = os.path.join(REPO_ROOT, "playbooks", "site.yml")
    fresh_from = 0
    for n in site_sizes:
        hosts = fleet.hosts[fresh_from : fresh_from + n]
        fresh_from += n
        ping = fleet.ping(hosts)
        progress("site.yml fresh on %d host(s)" % n)
        fresh = fleet.playbook(hosts, site)
        progress("site.yml converged on %d host(s)" % n)
        converged = fleet.playbook(hosts, site)
        results["site"].append({"hosts": n, "ping": ping, "fresh": fresh, "converged": converged})
    rest = fleet.hosts[fresh_from:]
    if rest:
        progress("converging the other %d host(s) (not measured)" % len(rest))
        fleet.playbook(rest, site)
    verify = os.path.join(REPO_ROOT, "playbooks", "verify.yml")
    for n in sizes:
        hosts = fleet.hosts[:n]
        progress("%d hosts: ping, verify, builtin verify, disable, enable" % n)
        row = {"hosts": n, "ping": fleet.ping(hosts)}
        row["verify"] = fleet.playbook(
            hosts, verify, "-e", "neuron_core_dump_expect=enabled", "-e", "neuron_core_dump_report_dir=" + report_dir
        )
        row["builtin"] = fleet.playbook(hosts, BUILTIN_VERIFY)
        row["disable"] = fleet.playbook(hosts, os.path.join(REPO_ROOT, "playbooks", "disable.yml"))
        row["enable"] = fleet.playbook(hosts, os.path.join(REPO_ROOT, "playbooks", "enable.yml"))
        results["ops"].append(row)
    return results


def render(results, meta):
    lines = [
        BEGIN,
        "## 5. Fleet scale: the playbooks on N hosts, as ratios to `ansible -m ping`",
        "",
        "Written by `%s` (%s; the run took %.0f s; load average %s at the end). Converged Debian 12"
        " containers, podman connection, `forks` = hosts; each time is the whole `ansible`/`ansible-playbook`"
        " process. Ratios come from this one run; absolute seconds move with the machine's load."
        % (meta["command"], meta["date"], meta["seconds"], ", ".join("%.2f" % x for x in meta["load_end"])),
        "",
        "| hosts | ping s | verify.yml s (x ping) | builtin verify s (x ping) | builtin / verify"
        " | disable.yml s (x ping) | enable.yml s (x ping) | verify s per host |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["ops"]:
        ping = row["ping"]
        lines.append(
            "| %d | %.1f | %.1f (%.2fx) | %.1f (%.2fx) | %.2fx | %.1f (%.2fx) | %.1f (%.2fx) | %.2f |"
            % (
                row["hosts"],
                ping,
                row["verify"],
                row["verify"] / ping,
                row["builtin"],
                row["builtin"] / ping,
                row["builtin"] / row["verify"],
                row["disable"],
                row["disable"] / ping,
                row["enable"],
                row["enable"] / ping,
                row["verify"] / row["hosts"],
            )
        )
    lines += [
        "",
        "| hosts | ping s | site.yml fresh s (x ping) | fresh s per host | site.yml converged s (x ping) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in results["site"]:
        lines.append(
            "| %d | %.1f | %.1f (%.1fx) | %.1f | %.1f (%.1fx) |"
            % (
                row["hosts"],
                row["ping"],
                row["fresh"],
                row["fresh"] / row["ping"],
                row["fresh"] / row["hosts"],
                row["converged"],
                row["converged"] / row["ping"],
            )
        )
    lines += [
        "",
        "Targets (issue 12): verify/disable/enable <= 1.3x ping and builtin >= 4x verify at 20 hosts; converged"
        " site.yml <= 10x ping; fresh site.yml <= 60 s per host. This harness only measures.",
        END,
        "",
    ]
    return "\n".join(lines)


def sizes(text):
    return [int(x) for x in text.split(",") if x]


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python3 bench/fleet_bench.py", description=__doc__.split("\n\n", maxsplit=1)[0]
    )
    parser.add_argument("--sizes", type=sizes, default=[5, 10, 20], help="host counts for ping/verify/... (5,10,20)")
    parser.add_argument("--site-sizes", type=sizes, default=[1, 10], help="host counts for site.yml (1,10)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="Markdown to update ('-' = stdout)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    count = max([*args.sizes, sum(args.site_sizes)])  # either list may be empty
    started = time.monotonic()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix="ncd-fleet-bench-") as tmp:
        try:
            with Fleet(tmp, count) as fleet:
                results = measure(fleet, args.sizes, args.site_sizes, tmp)
        except BenchError as exc:
            progress("FAILED: %s" % exc)
            return 1
        except KeyboardInterrupt:
            progress("interrupted")
            return 130
    meta = {
        "command": " ".join(["python3", "bench/fleet_bench.py", *(sys.argv[1:] if argv is None else argv)]),
        "date": date,
        "seconds": time.monotonic() - started,
        "load_end": os.getloadavg(),
    }
    progress("raw seconds: " + json.dumps(results))
    sections.write_section("fleet-bench", render(results, meta), args.output, progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
