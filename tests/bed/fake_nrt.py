"""Stand-in for libnrt's core-dump behaviour: the test oracle of the test bed.

There is no Neuron hardware in the test bed. This program plays a workload
whose NRT call fails, and does what docs/runtime-contract.md section 2 says
libnrt does then:

* read NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY and NEURON_RT_S3_CORE_DUMP_PREFIX
  once at start (nrt_init freezes the environment);
* gate dumps on "local dir or S3 prefix non-empty" AND access(hook, X_OK)
  evaluated as the current user;
* expand %p %t %l %c %d %i in both templates, once per hook execution;
* fork+exec the hook once per failing physical core, then write the runtime
  log tail to a file and exec the hook once more with --runtime-generated;
* block in waitpid on every hook run (no timeout) and measure that time.

It is written from the contract only and imports nothing from the product,
so the product is tested against the contract rather than against itself.
Standard library only; Python 3.9+; one file, run as ``python3 fake_nrt.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import mmap
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Tuple

LOCAL_DIR_VAR = "NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY"
S3_PREFIX_VAR = "NEURON_RT_S3_CORE_DUMP_PREFIX"
DEFAULT_LOCAL_TEMPLATE = "/tmp/neuron-core-dump/dt-%d-cid-%c"
# The real runtime hard-codes this path; --hook exists for tests only.
DEFAULT_HOOK = "/opt/aws/neuron/bin/neuron-dump"
DMI_ASSET_TAG = "/sys/devices/virtual/dmi/id/board_asset_tag"
FAKE_INSTANCE_ID = "i-0fa4e00000000000"
DEFAULT_CLUSTER_ID = "0" * 16  # no collectives: what the docs show

# libnrt expands into a 0x1000-byte buffer for directories and a 0xFF-byte one
# for file names. We keep at most 4095 bytes (room for the NUL) and 255 bytes.
DIR_CAP_BYTES = 4095
FILE_NAME_CAP_BYTES = 255

# Ranks are separate processes; they all fail at one shared wall-clock instant,
# late enough after launch for every rank's interpreter to have started
# (a 64-rank trn2 simulation on a 2-core test host needs a few seconds).
RANK_START_MARGIN_SECONDS = 0.3
RANK_START_MARGIN_PER_RANK_SECONDS = 0.05
DATETIME_FORMATS = {"compact": "%Y%m%d-%H%M%S", "dashed": "%Y-%m-%d-%H-%M"}
LOG_TAIL_LOCATIONS = ("tmp", "dump-dir")
DEFAULT_NEFF_NAME = "fake_model.neff"
DEFAULT_NEFF_UUID = "5f0e2ad4-3c51-4c56-9d0b-fa4e00000000"
FAKE_LIBNRT_NAME = "libnrt.so.fake"
EXEC_FAILED_STATUS = 127  # what a forked child reports when its execv fails

NRT_STATUS_NAMES = {
    0: "NRT_SUCCESS",
    1: "NRT_FAILURE",
    2: "NRT_INVALID",
    3: "NRT_INVALID_HANDLE",
    4: "NRT_RESOURCE",
    5: "NRT_TIMEOUT",
    6: "NRT_HW_ERROR",
    7: "NRT_QUEUE_FULL",
    9: "NRT_LOAD_NOT_ENOUGH_NC",
    10: "NRT_UNSUPPORTED_NEFF_VERSION",
    11: "NRT_FAIL_HOST_MEM_ALLOC",
    13: "NRT_UNINITIALIZED",
    14: "NRT_CLOSED",
    15: "NRT_QUEUE_EMPTY",
    101: "NRT_EXEC_UNIT_UNRECOVERABLE",
    1002: "NRT_EXEC_BAD_INPUT",
    1003: "NRT_EXEC_COMPLETED_WITH_NUM_ERR",
    1004: "NRT_EXEC_COMPLETED_WITH_ERR",
    1005: "NRT_EXEC_NC_BUSY",
    1006: "NRT_EXEC_OOB",
    1100: "NRT_COLL_PENDING",
    1200: "NRT_EXEC_HW_ERR_COLLECTIVES",
    1201: "NRT_EXEC_HW_ERR_HBM_UE",
    1202: "NRT_EXEC_HW_ERR_NC_UE",
    1203: "NRT_EXEC_HW_ERR_DMA_ABORT",
    1204: "NRT_EXEC_SW_NQ_OVERFLOW",
    1205: "NRT_EXEC_HW_ERR_REPAIRABLE_HBM_UE",
    1206: "NRT_NETWORK_PROXY_FAILURE",
}


class Terminated(Exception):
    """Raised in the main thread when SIGTERM or SIGINT asks the workload to stop."""


def _raise_terminated(signum, _frame):
    # Ignore repeats so that the cleanup triggered by the first one runs to the end.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Terminated(signal.Signals(signum).name)


def log(message: str) -> None:
    print(f"fake-nrt[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Settings read once at start, and the gate


@dataclasses.dataclass(frozen=True)
class DumpSettings:
    """What nrt_init freezes: the two templates, the hook path and the gate decision."""

    local_template: str
    s3_template: Optional[str]
    hook: str
    enabled: bool
    reason: str

    def as_report(self) -> dict:
        return {
            "enabled": self.enabled,
            "reason": self.reason,
            "local_template": self.local_template,
            "s3_template": self.s3_template,
            "hook": self.hook,
        }


def read_dump_settings(environ, hook: str) -> DumpSettings:
    raw_local = environ.get(LOCAL_DIR_VAR)
    # getenv()+strdup(): unset stays None, which is different from "".
    s3_template = environ.get(S3_PREFIX_VAR)
    # An S3 prefix always stages locally first, so an empty local dir next to a
    # non-empty prefix falls back to the default, exactly like an unset one.
    falls_back = raw_local is None or (raw_local == "" and bool(s3_template))
    local_template = DEFAULT_LOCAL_TEMPLATE if falls_back else raw_local
    enabled, reason = decide_gate(local_template, s3_template, hook)
    return DumpSettings(local_template, s3_template, hook, enabled, reason)


def decide_gate(local_template: str, s3_template: Optional[str], hook: str) -> Tuple[bool, str]:
    """core_dumps_are_enabled(): a destination is configured and the hook is executable by us."""
    if not local_template and not s3_template:
        return False, f"disabled: {LOCAL_DIR_VAR} and {S3_PREFIX_VAR} are both empty (or the prefix is unset)"
    if not os.path.exists(hook):
        return False, f"disabled: hook {hook} does not exist"
    if not os.access(hook, os.X_OK):
        return False, f"disabled: hook {hook} is not executable by uid {os.geteuid()}"
    return True, f"enabled: destination configured and hook {hook} is executable by uid {os.geteuid()}"


# ---------------------------------------------------------------------------
# Template expansion


def truncate_bytes(text: str, cap_bytes: int) -> str:
    """Cut to cap_bytes bytes like a C buffer would, even inside a multi-byte character.

    Strings travel as surrogate-escaped str (os.fsdecode), so the cut bytes
    reach the hook's argv exactly as libnrt would pass them.
    """
    return os.fsdecode(os.fsencode(text)[:cap_bytes])


def expand_template(template: str, values: Dict[str, str], cap_bytes: int) -> str:
    """Expand the runtime's % variables.

    Interpretation of "an unknown %X becomes a literal %" (runtime-contract.md
    section 2, RE): the runtime consumes the character after every '%'. A known
    one is replaced by its value; any other one (including '%' itself) yields a
    single '%' and the character is dropped. So "%Q" -> "%", "%%" -> "%",
    "%%d" -> "%d" (literally), and a lone '%' at the very end stays "%".
    The result is then truncated to cap_bytes bytes.
    """
    pieces = []
    index = 0
    while index < len(template):
        char = template[index]
        if char != "%":
            pieces.append(char)
            index += 1
            continue
        key = template[index + 1 : index + 2]  # "" for a trailing lone '%'
        pieces.append(values.get(key, "%") if key else "%")
        index += 2
    return truncate_bytes("".join(pieces), cap_bytes)


# ---------------------------------------------------------------------------
# Identity shared by every rank of one run


@dataclasses.dataclass(frozen=True)
class RunIdentity:
    epoch: float
    date_time: str
    cluster_id: str
    instance_id: str


def format_date_time(epoch: float, style: str) -> str:
    # Local time: the contract leaves the time zone open; TZ=UTC makes it UTC.
    return time.strftime(DATETIME_FORMATS[style], time.localtime(epoch))


def detect_instance_id() -> str:
    """Nitro hosts expose the instance id in DMI; containers and laptops get a fake one."""
    try:
        with open(DMI_ASSET_TAG, encoding="ascii", errors="replace") as handle:
            tag = handle.read().strip()
    except OSError:
        return FAKE_INSTANCE_ID
    return tag if re.fullmatch(r"i-[0-9a-f]{8,32}", tag) else FAKE_INSTANCE_ID


def build_identity(args) -> RunIdentity:
    epoch = args.epoch if args.epoch is not None else time.time()
    instance_id = args.instance_id if args.instance_id is not None else detect_instance_id()
    return RunIdentity(epoch, format_date_time(epoch, args.datetime_format), args.cluster_id, instance_id)


# ---------------------------------------------------------------------------
# One rank: a process that looks like a runtime user, fails, and runs the hook


@dataclasses.dataclass
class RankContext:
    args: argparse.Namespace
    settings: DumpSettings
    identity: RunIdentity
    rank: int
    private_dir: str
    pid: int = dataclasses.field(default_factory=os.getpid)
    tid: int = 0
    next_log_id: int = 0  # process-unique counter, one value per hook execution
    calls: List[dict] = dataclasses.field(default_factory=list)

    def take_log_id(self) -> int:
        log_id = self.next_log_id
        self.next_log_id += 1
        return log_id

    def expansion_values(self, log_id: int) -> Dict[str, str]:
        return {
            "p": str(self.pid),
            "t": str(self.tid),
            "l": str(log_id),
            "c": self.identity.cluster_id,
            "d": self.identity.date_time,
            "i": self.identity.instance_id,
        }

    def output_locations(self, log_id: int) -> Tuple[str, Optional[str]]:
        values = self.expansion_values(log_id)
        local_dir = expand_template(self.settings.local_template, values, DIR_CAP_BYTES)
        s3_prefix = None
        if self.settings.s3_template:
            s3_prefix = expand_template(self.settings.s3_template, values, DIR_CAP_BYTES)
        return local_dir, s3_prefix


def map_libnrt(path: str) -> mmap.mmap:
    """Map the file so the process shows a libnrt.so mapping in /proc/<pid>/maps."""
    with open(path, "rb") as handle:
        return mmap.mmap(handle.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)


def run_hook(argv: List[str]) -> Tuple[int, float, Optional[str]]:
    """fork+execv the hook and block in waitpid, as libnrt does: no shell, no timeout.

    The child inherits the environment, uid, cwd and stdio. Returns the exit
    status (negative: killed by that signal), the blocked wall time and, when
    the exec itself failed, the error.
    """
    started = time.monotonic()
    try:
        child = subprocess.Popen(argv)
    except OSError as exc:
        return EXEC_FAILED_STATUS, time.monotonic() - started, str(exc)
    status = child.wait()
    return status, time.monotonic() - started, None


def record_call(ctx: RankContext, kind: str, argv: List[str], log_id: int, destination, **details) -> None:
    local_dir, s3_prefix = destination
    started_at = time.time()  # wall clock, comparable across ranks
    status, blocked, error = run_hook(argv)
    call = {
        "kind": kind,
        "started_at": started_at,
        "argv": argv,
        "log_id": log_id,
        "local_output_dir": local_dir,
        "s3_output_prefix": s3_prefix,
        "blocked_seconds": round(blocked, 6),
        "exit_status": status,
    }
    call.update(details)
    if error is not None:
        call["exec_error"] = error
    ctx.calls.append(call)
    if status != 0:
        log(f"hook ({kind}) exited with status {status}" + (f": {error}" if error else ""))


def destination_flags(local_dir: str, s3_prefix: Optional[str]) -> List[str]:
    # --s3-output-prefix only exists when the prefix is set: later flags shift by two.
    flags = ["--local-output-dir", local_dir]
    if s3_prefix is not None:
        flags += ["--s3-output-prefix", s3_prefix]
    return flags


def dump_core(ctx: RankContext, device: int, core: int) -> None:
    args = ctx.args
    log_id = ctx.take_log_id()
    local_dir, s3_prefix = ctx.output_locations(log_id)
    argv = [ctx.settings.hook]
    if not args.no_neff:
        argv += ["--neff-name", args.neff_name, "--neff-uuid", args.neff_uuid]
    argv += [
        "--date-time", ctx.identity.date_time,
        "--pid", str(ctx.pid),
        "--tid", str(ctx.tid),
        "--log-id", str(log_id),
        "--instance-id", ctx.identity.instance_id,
        "--cluster-id", ctx.identity.cluster_id,
        "--error-location", args.error_location,
        "--error-code", str(args.error_code),
    ]  # fmt: skip
    argv += destination_flags(local_dir, s3_prefix)
    argv += ["--device-id", str(device), "--core-id", str(core)]
    destination = (local_dir, s3_prefix)
    record_call(ctx, "core", argv, log_id, destination, device_id=device, core_id=core, runtime_generated=None)


def log_tail_lines(ctx: RankContext) -> List[str]:
    args = ctx.args
    status_name = NRT_STATUS_NAMES.get(args.error_code, "UNKNOWN")
    cores = ", ".join(f"nd{device}:nc{core}" for device, core in args.cores)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    prefix = f"{stamp} {ctx.pid}:{ctx.tid}"
    neff = "no NEFF" if args.no_neff else f"NEFF {args.neff_name} ({args.neff_uuid})"
    status = f"status {args.error_code} ({status_name})"
    return [
        f"{prefix} ERROR  NRT:{args.error_location} failed with {status} on {cores}, {neff}",
        f"{prefix} INFO   NRT:nrt_infodump Instance ID: {ctx.identity.instance_id}",
        f"{prefix} INFO   NRT:nrt_infodump Cluster ID: {ctx.identity.cluster_id}",
        f"{prefix} INFO   NRT:nrt_infodump Rank: {ctx.rank}",
        f"{prefix} ERROR  NRT:nrt_core_dump collecting a core dump for {status}",
    ]


def write_log_tail(ctx: RankContext, local_dir: str) -> str:
    """Write the runtime's own error-log tail; return its real path for --runtime-generated."""
    directory = ctx.private_dir
    if ctx.args.log_tail_location == "dump-dir":
        try:
            os.makedirs(local_dir, exist_ok=True)
            directory = local_dir
        except OSError as exc:
            # Unknown what libnrt does here; keep the hook call so the bed still sees it.
            log(f"cannot create {local_dir} ({exc}); writing the log tail to {directory}")
    name = truncate_bytes(f"{ctx.identity.instance_id}-nrt-pid-{ctx.pid}.log", FILE_NAME_CAP_BYTES)
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write("\n".join(log_tail_lines(ctx)) + "\n")
    return os.path.realpath(path)


def dump_runtime_log(ctx: RankContext) -> None:
    log_id = ctx.take_log_id()
    local_dir, s3_prefix = ctx.output_locations(log_id)
    log_path = write_log_tail(ctx, local_dir)
    argv = [
        ctx.settings.hook,
        "--runtime-generated", log_path,
        "--pid", str(ctx.pid),
        "--tid", str(ctx.tid),
        "--log-id", str(log_id),
        "--instance-id", ctx.identity.instance_id,
    ]  # fmt: skip
    argv += destination_flags(local_dir, s3_prefix)
    argv += ["--cluster-id", ctx.identity.cluster_id, "--date-time", ctx.identity.date_time]
    destination = (local_dir, s3_prefix)
    details = {"device_id": None, "core_id": None, "runtime_generated": log_path}
    record_call(ctx, "runtime-generated", argv, log_id, destination, **details)


def fail(ctx: RankContext) -> None:
    """What nrt_core_dump does once an NRT call failed on this rank."""
    ctx.tid = threading.get_native_id()
    print(log_tail_lines(ctx)[0], file=sys.stderr, flush=True)  # the runtime's console error line
    if not ctx.settings.enabled:
        log("core dump skipped: " + ctx.settings.reason)
        return
    for device, core in ctx.args.cores:
        dump_core(ctx, device, core)
    dump_runtime_log(ctx)


def run_rank(args, settings: DumpSettings, identity: RunIdentity, rank: int, fail_at: float, libnrt: str) -> dict:
    """Live as a runtime user until fail_at, then fail (unless --no-fail). Returns the rank report."""
    private_dir = tempfile.mkdtemp(prefix=f"fake-nrt-rank{rank}-")
    ctx = RankContext(args, settings, identity, rank, private_dir)
    report = {"rank": rank, "pid": ctx.pid, "tid": None, "failed": False, "terminated": False, "calls": ctx.calls}
    mapping = None
    try:
        mapping = map_libnrt(libnrt)
        time.sleep(max(0.0, fail_at - time.time()))
        if not args.no_fail:
            report["failed"] = True
            fail(ctx)
    except Terminated as stop:
        log(f"rank {rank} stopped by {stop}")
        report["terminated"] = True
    finally:
        report["tid"] = ctx.tid or None  # known once the failure started, even if stopped midway
        if mapping is not None:
            mapping.close()
        if not args.keep_temp:
            shutil.rmtree(private_dir, ignore_errors=True)
    return report


# ---------------------------------------------------------------------------
# The launcher: one process per rank, sharing epoch, cluster id and fail time


def prepare_libnrt_file(requested: Optional[str], workdir: str) -> Tuple[str, bool]:
    """Return the file to map and whether we created it (and so must remove it)."""
    path = requested or os.path.join(workdir, FAKE_LIBNRT_NAME)
    if os.path.exists(path):
        return path, False
    with open(path, "wb") as handle:
        handle.write(b"\x7fELF fake libnrt.so for the core-dump test bed\n".ljust(4096, b"\0"))
    return path, True


def rank_command(argv: List[str], rank: int, identity: RunIdentity, fail_at: float, libnrt: str, report: str):
    # Later options win in argparse, so the shared values override whatever was given.
    return [
        sys.executable, os.path.abspath(__file__), *argv,
        "--rank-index", str(rank),
        "--epoch", repr(identity.epoch),
        "--instance-id", identity.instance_id,
        "--fail-at", repr(fail_at),
        "--libnrt-map", libnrt,
        "--rank-report", report,
    ]  # fmt: skip


def run_rank_processes(args, argv, identity: RunIdentity, fail_at: float, libnrt: str, workdir: str):
    """Spawn one process per rank, forward SIGTERM to them, collect their reports."""
    report_paths = [os.path.join(workdir, f"rank-{rank}.json") for rank in range(args.ranks)]
    children = []
    try:
        for rank, path in enumerate(report_paths):
            children.append(subprocess.Popen(rank_command(argv, rank, identity, fail_at, libnrt, path)))
            log(f"rank {rank} is pid {children[-1].pid}")
        for child in children:
            child.wait()
    except Terminated:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait()
    return [read_rank_report(rank, child, path) for rank, (child, path) in enumerate(zip(children, report_paths))]


def read_rank_report(rank: int, child: subprocess.Popen, path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        pass
    report = {"rank": rank, "pid": child.pid, "tid": None, "failed": False, "terminated": False, "calls": []}
    if child.returncode == -signal.SIGTERM:
        # SIGTERM reached the rank before it had installed its handler: a stop, not a crash.
        report["terminated"] = True
    else:
        report["error"] = f"rank exited with status {child.returncode} without a report"
    return report


def run_launcher(args, argv: List[str]) -> int:
    report_stream = reserve_stdout_for_report() if args.report == "-" else None
    settings = read_dump_settings(os.environ, args.hook)
    identity = build_identity(args)
    log(f"core dump gate: {settings.reason}")
    workdir = tempfile.mkdtemp(prefix="fake-nrt-")
    libnrt, created_libnrt = prepare_libnrt_file(args.libnrt_map, workdir)
    try:
        if args.ranks == 1:
            # A single rank runs in this process, so the caller's pid is the runtime user.
            fail_at = time.time() + args.hold
            ranks = [run_rank(args, settings, identity, 0, fail_at, libnrt)]
        else:
            margin = max(RANK_START_MARGIN_SECONDS, RANK_START_MARGIN_PER_RANK_SECONDS * args.ranks)
            fail_at = time.time() + margin + args.hold
            ranks = run_rank_processes(args, argv, identity, fail_at, libnrt, workdir)
    finally:
        if created_libnrt and not args.keep_temp:
            # Someone may have cleaned /tmp under us; a missing file must not cost the report.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(libnrt)
        if not args.keep_temp:
            shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "gate": settings.as_report(),
        "run": {
            "epoch": identity.epoch,
            "date_time": identity.date_time,
            "cluster_id": identity.cluster_id,
            "instance_id": identity.instance_id,
            "error_code": args.error_code,
            "error_location": args.error_location,
            "cores": [list(pair) for pair in args.cores],
            "fail_at": fail_at,
            "libnrt_map": libnrt,
        },
        "ranks": ranks,
    }
    write_report(report, args.report, report_stream)
    # Exit 0 whatever the hook did; 1 only when a rank of ours crashed (a bug in this oracle).
    return 1 if any("error" in rank for rank in ranks) else 0


def run_rank_process(args) -> int:
    """A spawned rank: it reads the environment itself, as every real rank's nrt_init does."""
    settings = read_dump_settings(os.environ, args.hook)
    identity = build_identity(args)
    report = run_rank(args, settings, identity, args.rank_index, args.fail_at, args.libnrt_map)
    report["gate"] = settings.as_report()
    write_report(report, args.rank_report, None)
    return 0


def reserve_stdout_for_report():
    """Keep fd 1 for the JSON report; ranks, hooks and prints then write to stderr."""
    sys.stdout.flush()
    report_fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(report_fd, "w", encoding="utf-8")


def write_report(report: dict, destination: Optional[str], stream) -> None:
    text = json.dumps(report, indent=2) + "\n"
    if stream is not None:
        stream.write(text)
        stream.flush()
    elif destination:
        # Atomic, so a test polling for the file never reads half of it.
        partial = f"{destination}.partial.{os.getpid()}"
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(partial, destination)


# ---------------------------------------------------------------------------
# Command line


def parse_cores(text: str) -> List[Tuple[int, int]]:
    cores = []
    for item in text.split(","):
        match = re.fullmatch(r"\s*(\d+):(\d+)\s*", item)
        if not match:
            raise argparse.ArgumentTypeError(f"expected device:core pairs like 0:0,0:1, got {text!r}")
        cores.append((int(match.group(1)), int(match.group(2))))
    return cores


def parse_cluster_id(text: str) -> str:
    if text == "none":
        return "none"
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from None
    if not 0 <= value < 2**64:
        raise argparse.ArgumentTypeError(f"cluster id {text!r} is outside 0..2**64-1")
    return f"{value:016x}"


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fake_nrt.py",
        description="Play a Neuron workload whose NRT call fails, and run the core-dump hook exactly as "
        "libnrt does (env gate, %-expansion, one run per failing core, --runtime-generated, "
        f"blocking waitpid). Reads {LOCAL_DIR_VAR} and {S3_PREFIX_VAR} once at start.",
    )
    add = parser.add_argument
    add(
        "--hook",
        default=DEFAULT_HOOK,
        help="core-dump helper to run (default %(default)s). TEST ONLY: the real runtime hard-codes that path "
        "and has no way to change it.",
    )
    add(
        "--cores",
        type=parse_cores,
        default=[(0, 0)],
        metavar="DEV:CORE[,...]",
        help="failing physical cores as device:core pairs (default 0:0)",
    )
    add("--ranks", type=positive_int, default=1, help="rank processes failing together (default 1)")
    add("--error-code", type=int, default=1006, help="NRT status passed as --error-code (default %(default)s)")
    add("--error-location", default="nrt_execute()", help="failing API (default %(default)s)")
    add("--neff-name", default=DEFAULT_NEFF_NAME, help="default %(default)s")
    add("--neff-uuid", default=DEFAULT_NEFF_UUID, help="default %(default)s")
    add("--no-neff", action="store_true", help="omit --neff-name/--neff-uuid (the HBM-scrub failure path)")
    add(
        "--epoch",
        type=non_negative_float,
        default=None,
        help="collectives epoch for %%d, shared by all ranks (default: the launcher's current time)",
    )
    add(
        "--datetime-format",
        choices=sorted(DATETIME_FORMATS),
        default="compact",
        help="compact = %%Y%%m%%d-%%H%%M%%S (default), dashed = %%Y-%%m-%%d-%%H-%%M; local time, honours TZ",
    )
    add(
        "--cluster-id",
        type=parse_cluster_id,
        default=DEFAULT_CLUSTER_ID,
        help="integer shown as %%016x, or 'none' (default 0 -> 0000000000000000)",
    )
    add(
        "--instance-id",
        default=None,
        help=f"default: {DMI_ASSET_TAG} when it looks like i-..., else {FAKE_INSTANCE_ID}",
    )
    add(
        "--log-tail-location",
        choices=LOG_TAIL_LOCATIONS,
        default="tmp",
        help="write <iid>-nrt-pid-<pid>.log in a private temp dir (default) or in the expanded local dump dir",
    )
    add(
        "--hold",
        type=non_negative_float,
        default=0.0,
        help="stay alive this many seconds (mapping a libnrt.so file) before failing",
    )
    add("--no-fail", action="store_true", help="do not fail: just hold, then exit 0")
    add(
        "--libnrt-map",
        default=None,
        metavar="PATH",
        help="file to mmap so the process shows in /proc/<pid>/maps as a libnrt user; its name must contain "
        f"'libnrt.so'; created (and removed at exit) if missing (default: {FAKE_LIBNRT_NAME} in a private temp dir)",
    )
    add("--keep-temp", action="store_true", help="keep private temp files (log tails, fake libnrt) for debugging")
    add("--report", default=None, metavar="FILE", help="write the JSON report to FILE, or '-' for stdout")
    # Internal: how the launcher starts each rank process.
    add("--rank-index", type=int, default=None, help=argparse.SUPPRESS)
    add("--fail-at", type=float, default=None, help=argparse.SUPPRESS)
    add("--rank-report", default=None, help=argparse.SUPPRESS)
    return parser


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.libnrt_map is not None and "libnrt.so" not in os.path.basename(args.libnrt_map):
        parser.error(f"--libnrt-map: the file name must contain 'libnrt.so', got {args.libnrt_map!r}")
    if args.libnrt_map is not None and os.path.exists(args.libnrt_map) and os.path.getsize(args.libnrt_map) == 0:
        parser.error(f"--libnrt-map: {args.libnrt_map} is empty and cannot be mapped")
    if args.libnrt_map is not None and not os.path.isdir(os.path.dirname(os.path.abspath(args.libnrt_map))):
        parser.error(f"--libnrt-map: directory of {args.libnrt_map} does not exist")
    if args.instance_id is not None and ("/" in args.instance_id or not args.instance_id):
        parser.error(f"--instance-id must be non-empty and contain no '/', got {args.instance_id!r}")
    if args.report not in (None, "-") and not os.path.isdir(os.path.dirname(os.path.abspath(args.report))):
        parser.error(f"--report: directory of {args.report} does not exist")
    if args.rank_index is not None and (args.fail_at is None or args.rank_report is None or not args.libnrt_map):
        parser.error("--rank-index is internal and needs --fail-at, --rank-report and --libnrt-map")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGINT, _raise_terminated)
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        if args.rank_index is not None:
            return run_rank_process(args)
        return run_launcher(args, argv)
    except Terminated:
        # Stopped outside a rank's life (during setup or reporting): still a clean stop.
        return 0


if __name__ == "__main__":
    sys.exit(main())
