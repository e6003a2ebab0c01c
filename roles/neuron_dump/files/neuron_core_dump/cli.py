"""``neuron-core-dump``: coredumpctl for Neuron runtime core dumps.

Subcommands (all accept ``--json`` and ``--config PATH``):

``list [--limit N]``     dumps on this host, newest first: job, error, size, upload state
``info DUMP``            the same fields for one dump (name or path), plus its files and records
``upload [--wait]``      drain the spool and upload (root; run by the systemd path unit)
``gc [--dry-run]``       apply retention (run by a timer and after uploads)
``status``               spool depth, last error/success, uploader health, storage
``self-test [--s3]``     run the installed hook as the runtime would and check the result
``check-config``         validate the configuration file (the role runs it before installing one)

Exit status: 0 on success, 1 on a real failure (upload failed, self-test failed,
not permitted), 2 for usage errors and an invalid configuration.
"""

import os
import sys
import time

from . import config as config_mod
from . import fastjson, layout, log

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _parser(default_config):
    import argparse  # not at the top: ``status`` answers without it (below)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--config", default=default_config, help="config file (default: %(default)s)")
    parser = argparse.ArgumentParser(
        prog="neuron-core-dump", description="List, inspect, upload and clean up Neuron runtime core dumps."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    listing = sub.add_parser("list", parents=[common], help="list dumps on this host, newest first")
    listing.add_argument(
        "--limit", type=_count, default=0, help="at most this many dumps (default: all; 'total' counts every one)"
    )
    info = sub.add_parser("info", parents=[common], help="show one dump")
    info.add_argument("dump", help="dump name or path")
    upload = sub.add_parser("upload", parents=[common], help="upload queued dumps (root)")
    upload.add_argument("--wait", action="store_true", help="wait for files still being written and for new entries")
    upload.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    gc = sub.add_parser("gc", parents=[common], help="apply retention")
    gc.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    sub.add_parser("status", parents=[common], help="uploader and storage status")
    sub.add_parser("check-config", parents=[common], help="validate the configuration file")
    selftest = sub.add_parser("self-test", parents=[common], help="invoke the hook as the runtime would")
    selftest.add_argument("--s3", action="store_true", help="also round-trip a probe object to S3")
    selftest.add_argument("--s3-prefix", help="s3://bucket/prefix for the probe (default: s3.selftest_prefix)")
    selftest.add_argument("--hook", default=layout.HOOK, help="hook to test (default: %(default)s)")
    return parser


def _count(text):
    import argparse

    if not text.isdigit():
        raise argparse.ArgumentTypeError("must be a whole number >= 0")
    return int(text)


def _emit(args, data, human_text):
    from .keys import clean, clean_text

    # file and dir names are the users': any bytes at all. Escaped here, so no name can make
    # an output fail or a strict JSON reader (Ansible refuses surrogates) reject it.
    # fastjson, not json: `status` prints through here and starts without json/re/enum (it must
    # answer fast on a saturated host: docs/benchmarks.md section 4)
    if args.json:
        sys.stdout.write(fastjson.dumps(clean(data), indent=2) + "\n")
    elif human_text:
        sys.stdout.write(clean_text(human_text) + "\n")


def _load_config(args):
    try:
        return config_mod.read(args.config)
    except config_mod.ConfigError as exc:
        sys.stderr.write("neuron-core-dump: invalid configuration %s: %s: %s\n" % (args.config, exc.key, exc.rule))
        return None


def _enable_system_site_packages():
    """Make the OS's boto3 importable when started with -S (no site import).

    The hook needs -S for speed; the CLI may be installed with the same interpreter line.
    Under -I, ``site.main()`` adds the system site-packages only (never the user's), and
    PYTHONPATH stays ignored.
    """
    if sys.flags.no_site:
        import site

        site.main()


class _StatusArgs:
    command = "status"
    worker = False

    def __init__(self, json_output, config_path):
        self.json = json_output
        self.config = config_path


def _status_args(argv, default_config):
    """``status [--json] [--config PATH]`` parsed by hand, else None (argparse handles everything else).

    argparse imports ``re`` and ``enum``: about 30 ms of a ~60 ms ``status``, which the fleet
    report and monitoring call often and which must answer quickly on a busy host.
    """
    if not argv or argv[0] != "status":
        return None
    json_output, config_path, rest = False, default_config, list(argv[1:])
    while rest:
        item = rest.pop(0)
        if item == "--json":
            json_output = True
        elif item == "--config" and rest:
            config_path = rest.pop(0)
        elif item.startswith("--config="):
            config_path = item[len("--config=") :]
        else:
            return None  # -h, a typo: argparse explains
    return _StatusArgs(json_output, config_path)


def main(argv=None, default_config=config_mod.DEFAULT_PATH):
    argv = sys.argv[1:] if argv is None else argv
    args = _status_args(argv, default_config)
    if args is not None:
        # before the site-packages: status needs no boto3, and processing their .pth files
        # (setuptools' _distutils_hack, ...) is a good part of its start-up on a busy host
        return _cmd_status(args)
    _enable_system_site_packages()
    if argv[:1] == ["oci-hook"]:  # run by the OCI runtime (CDI spec): no config, always exit 0
        from . import oci_hook

        return oci_hook.main(argv[1:])
    args = _parser(default_config).parse_args(argv)
    if args.command == "status":  # what the hand parser left to argparse (abbreviated options)
        return _cmd_status(args)
    interactive = not args.json and os.environ.get("INVOCATION_ID") is None and not getattr(args, "worker", False)
    config = _load_config(args)
    if config is None:
        return EXIT_USAGE
    log.setup(log.syslog.LOG_DAEMON, stderr_level=log.LOG_WARNING if interactive else None, log_file=config["log_file"])
    handler = {
        "check-config": _cmd_check_config,
        "list": _cmd_list,
        "info": _cmd_info,
        "upload": _cmd_upload,
        "gc": _cmd_gc,
        "self-test": _cmd_selftest,
    }[args.command]
    try:
        return handler(args, config)
    except PermissionError as exc:
        sys.stderr.write("neuron-core-dump %s: permission denied (%s); run it as root\n" % (args.command, exc))
        return EXIT_FAILED
    except OSError as exc:  # unsafe or broken spool/state dirs: say what, without a traceback
        message = "neuron-core-dump %s: %s" % (args.command, exc.strerror or exc)
        if exc.filename:
            message += " (%s)" % exc.filename
        sys.stderr.write(message + "\n")
        log.error(message)
        return EXIT_FAILED


def _cmd_status(args):
    from . import status

    result = status.collect(args.config)
    _emit(args, result, status.human(result))
    return EXIT_OK


def _age(mtime):
    seconds = max(0, time.time() - mtime)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return "%d%s" % (seconds // size, unit)
    return "%ds" % seconds


def _cmd_check_config(args, config):
    from . import notify

    # _load_config has validated the file; what only this host can tell is checked here
    problems = notify.problems(config)
    if problems:
        for problem in problems:
            sys.stderr.write("neuron-core-dump: invalid configuration %s: %s\n" % (args.config, problem))
        return EXIT_USAGE
    _emit(args, {"config": args.config, "ok": True}, "%s: valid" % args.config)
    return EXIT_OK


def _cmd_list(args, config):
    from . import dumps
    from .status import _size

    found, _unused = dumps.scan(config)
    ordered = dumps.newest_first(found)
    shown = ordered[: args.limit] if args.limit else ordered
    matchers = dumps.name_matchers(config)
    data = [dumps.describe(d, matchers) for d in shown]
    lines = ["%-10s %-9s %6s %6s  %-32s %s" % ("UPLOAD", "SIZE", "FILES", "AGE", "ERROR", "PATH")]
    for item in data:
        lines.append(
            "%-10s %-9s %6d %6s  %-32s %s"
            % (item["upload"]["state"], _size(item["bytes"]), item["files"], _age(item["newest_mtime"]),
               _error_text(item), item["path"])
        )  # fmt: skip
    if not data:
        lines = ["no dumps under %s" % ", ".join(config["dump_roots"])]
    elif len(shown) < len(ordered):
        lines.append("(%d of %d dumps shown: --limit)" % (len(shown), len(ordered)))
    _emit(args, {"dumps": data, "total": len(ordered), "limit": args.limit or None}, "\n".join(lines))
    return EXIT_OK


def _error_text(item):
    if item["error_name"]:
        return "%s (%d)" % (item["error_name"], item["error_code"])
    return "-" if item["error_code"] is None else str(item["error_code"])


def _cmd_info(args, config):
    from . import dumps

    dump = dumps.find(config, args.dump)
    if dump is None:
        sys.stderr.write("neuron-core-dump info: no dump %r under %s\n" % (args.dump, ", ".join(config["dump_roots"])))
        return EXIT_FAILED
    data = dumps.describe(dump, dumps.name_matchers(config))
    data["file_list"] = [{"name": name, "size": size} for name, size, _unused in sorted(dump.files)]
    data["records"] = _records(dump)
    upload = data["upload"]
    lines = ["%s  (%s, %d files, uid %d)" % (dump.path, upload["state"], len(dump.files), dump.uid)]
    lines.append("  job %s, %s, error %s at %s" % (data["job_key"], data["time"], _error_text(data),
                                                   data["error_location"] or "-"))  # fmt: skip
    if data["neff_name"] or data["neff_uuid"]:
        lines.append("  neff %s (%s)" % (data["neff_name"] or "-", data["neff_uuid"] or "-"))
    lines.append(
        "  pids %s, ranks %s, devices %s, cores %s"
        % tuple(",".join(map(str, data[k])) or "-" for k in ("pids", "ranks", "devices", "cores"))
    )
    for prefix, item in data["s3"].items():
        lines.append(
            "  s3 %s: %d file(s) uploaded, manifest %s"
            % (prefix, item["files_uploaded"], item["manifest"] or "not yet")
        )
    if upload["last_error"]:
        lines.append("  last error: %s" % upload["last_error"])
    for record in data["records"]:
        flags = record.get("flags", {})
        lines.append(
            "  record %s: pid %s device %s core %s error %s at %s"
            % (record.get("kind"), flags.get("pid"), flags.get("device-id", "-"), flags.get("core-id", "-"),
               flags.get("error-code", "-"), flags.get("error-location", "-"))
        )  # fmt: skip
    for item in data["file_list"]:
        lines.append("  %12d  %s" % (item["size"], item["name"]))
    _emit(args, data, "\n".join(lines))
    return EXIT_OK


def _records(dump):
    from . import fsutil

    records = []
    try:
        fd = fsutil.walk(dump.path)
    except OSError:
        return records
    try:
        for name, _size, _mtime in sorted(dump.files):
            if "-ncd-" not in name or not name.endswith(".json"):
                continue
            try:
                data = fsutil.load_json(fd, name, 4 * 1024 * 1024)
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                records.append(
                    {"file": name, "kind": data.get("kind"), "time": data.get("time"), "flags": data.get("flags", {})}
                )
    finally:
        os.close(fd)
    return records


def _cmd_upload(args, config):
    from . import uploader

    worker = uploader.Uploader(config)
    try:
        # a detached worker has nobody waiting on it and no timer behind it: it always waits for
        # files still being written, or a dump could sit in the queue until the next failure
        result = worker.run(wait_for_all=args.wait or args.worker, worker=args.worker)
    finally:
        worker.close()
    gc_report = None
    if config["retention"]["gc_after_upload"] and not result.busy:
        from . import retention

        try:
            gc_report = retention.run(config)
        except OSError as exc:
            log.error("gc after upload failed: %s" % exc)
    data = result.as_dict()
    data["gc"] = gc_report
    if result.busy:
        text = "another uploader is running; it will take the new entries"
    else:
        text = "uploaded %d file(s), %d already there; %d dump(s) done, %d failed, %d waiting, %d local only" % (
            result.uploaded,
            result.skipped,
            result.groups_done,
            result.groups_failed,
            result.groups_deferred,
            result.local_only,
        )
        for error in result.errors:
            text += "\nerror: %s" % error
    _emit(args, data, text)
    return EXIT_FAILED if result.groups_failed else EXIT_OK


def _cmd_gc(args, config):
    from . import retention

    report = retention.run(config, dry_run=args.dry_run)
    lines = []
    for item in report["deleted"]:
        lines.append(
            "%s %s %s (%d bytes): %s"
            % (
                "would delete" if args.dry_run else "deleted",
                item["status"],
                item["path"],
                item["bytes"],
                "; ".join(item["reasons"]),
            )
        )
    if not lines:
        lines.append("nothing to delete")
    _emit(args, report, "\n".join(lines))
    return EXIT_FAILED if report["errors"] else EXIT_OK


def _cmd_selftest(args, config):
    from . import selftest

    report = selftest.run(args.config, hook_path=args.hook, with_s3=args.s3, s3_prefix=args.s3_prefix)
    _emit(args, report.as_dict(), report.human())
    return EXIT_OK if report.ok else EXIT_FAILED
