"""The configuration file (``layout.CONFIG_FILE``, written by the role with ``to_nice_json``).

Every key is optional: a missing key takes its default, so ``{}`` is a valid file and so is a
missing file. Unknown keys are errors (almost always typos). An invalid file makes the CLI exit
non-zero with a message naming the key and the rule; the hook logs the problem and carries on
with the defaults, because it must never lose a dump. Every key is described once, in ``TABLE``
(default, validator, meaning): ``DEFAULTS``, ``SCHEMA`` and docs/configuration.md come from it.
"""

import os

from . import layout

DEFAULT_PATH = layout.CONFIG_FILE
DEFAULT_DUMP_BASE = layout.DUMP_ROOT
VENDOR_DUMP_BASE = layout.VENDOR_DUMP_ROOT

MIB = 1024 * 1024
GIB = 1024 * MIB

DEFAULT_CAPTURE_COMMANDS = [
    {"name": "neuron-ls", "argv": [layout.HOOK.rpartition("/")[0] + "/neuron-ls"], "timeout_seconds": 30},
    {
        "name": "kernel-log",
        "argv": ["/bin/sh", "-c", "journalctl -k -n 200 --no-pager 2>/dev/null || dmesg 2>/dev/null | tail -n 200"],
        "timeout_seconds": 15,
    },
    {
        "name": "efa-counters",
        "argv": ["/bin/sh", "-c", "grep -r . /sys/class/infiniband/*/ports/*/hw_counters 2>/dev/null || true"],
        "timeout_seconds": 15,
    },
]


class ConfigError(ValueError):
    """An invalid configuration value: ``key`` is the dotted key, ``rule`` what it must be."""

    def __init__(self, key, rule):
        ValueError.__init__(self, "%s: %s" % (key, rule))
        self.key = key
        self.rule = rule


# --- validators: each takes (key, value) and returns the normalised value or raises ConfigError;
# ``rule`` says what it accepts (docs/configuration.md)


def _rule(text):
    def mark(check):
        check.rule = text
        return check

    return mark


@_rule("true or false")
def _bool(key, value):
    if not isinstance(value, bool):
        raise ConfigError(key, "must be true or false")
    return value


def _number(minimum=None, maximum=None, exclusive_min=False, integer=False):
    def check(key, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            raise ConfigError(key, "must be an integer" if integer else "must be a number")
        if minimum is not None and (value <= minimum if exclusive_min else value < minimum):
            raise ConfigError(key, "must be %s %s" % (">" if exclusive_min else ">=", minimum))
        if maximum is not None and value > maximum:
            raise ConfigError(key, "must be <= %s" % maximum)
        return value

    check.bounds = (integer, minimum, maximum, exclusive_min)  # _describe() words it
    return check


@_rule("absolute path")
def _abs_path(key, value):
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise ConfigError(key, "must be an absolute path")
    if ".." in value.split("/"):
        raise ConfigError(key, "must not contain '..'")
    return value


def _optional(check):
    def optional(key, value):
        return None if value is None else check(key, value)

    optional.inner = check
    return optional


@_rule("non-empty string")
def _string(key, value):
    if not isinstance(value, str) or not value:
        raise ConfigError(key, "must be a non-empty string")
    return value


def _choice(*choices):
    def check(key, value):
        if value not in choices:
            raise ConfigError(key, "must be one of %s" % ", ".join(repr(c) for c in choices))
        return value

    return _rule("one of " + ", ".join('"%s"' % c for c in choices))(check)


def _mode(required_bits):
    def check(key, value):
        if isinstance(value, str):
            try:
                parsed = int(value, 8)
            except ValueError:
                raise ConfigError(key, 'must be an octal mode string such as "0700"') from None
        elif isinstance(value, int) and not isinstance(value, bool):
            parsed = value
        else:
            raise ConfigError(key, 'must be an octal mode string such as "0700" or an integer')
        if parsed < 0 or parsed > 0o7777 or (parsed & required_bits) != required_bits:
            raise ConfigError(key, "must be a mode <= 07777 that includes %04o" % required_bits)
        return parsed

    return _rule("octal mode string (or int) including %04o" % required_bits)(check)


@_rule("non-empty list of absolute paths")
def _path_list(key, value):
    if not isinstance(value, list) or not value:
        raise ConfigError(key, "must be a non-empty list of absolute paths")
    return [_abs_path("%s[%d]" % (key, index), item).rstrip("/") or "/" for index, item in enumerate(value)]


@_rule("http:// or https:// URL")
def _endpoint(key, value):
    if not isinstance(value, str) or not (value.startswith("http://") or value.startswith("https://")):
        raise ConfigError(key, "must be an http:// or https:// URL")
    return value


@_rule("12-digit account id (string)")
def _account_id(key, value):
    if not isinstance(value, str) or len(value) != 12 or not value.isdigit():
        raise ConfigError(key, "must be a 12-digit AWS account id (a string)")
    return value


@_rule("bucket name")
def _bucket_name(key, value):
    if not valid_bucket_name(value):
        raise ConfigError(key, "must be a valid S3 bucket name")
    return value


@_rule("s3://bucket/prefix")
def _s3_url(key, value):
    if not isinstance(value, str) or not value.startswith("s3://") or not valid_bucket_name(value[5:].split("/")[0]):
        raise ConfigError(key, "must be an s3://bucket/prefix URL with a valid bucket name")
    return value


@_rule("list of bucket names")
def _bucket_list(key, value):
    if not isinstance(value, list):
        raise ConfigError(key, "must be a list of bucket names")
    return [_bucket_name("%s[%d]" % (key, index), item) for index, item in enumerate(value)]


@_rule("list of uids")
def _uid_list(key, value):
    if not isinstance(value, list):
        raise ConfigError(key, "must be a list of uids (integers)")
    result = []
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < 2**32 - 1:
            raise ConfigError("%s[%d]" % (key, index), "must be a uid (integer 0..4294967294)")
        result.append(item)
    return result


@_rule("list of group names or gids")
def _group_list(key, value):
    if not isinstance(value, list):
        raise ConfigError(key, "must be a list of group names or gids")
    result = []
    for index, item in enumerate(value):
        item_key = "%s[%d]" % (key, index)
        if isinstance(item, int) and not isinstance(item, bool):
            if not 0 <= item < 2**32 - 1:
                raise ConfigError(item_key, "must be a gid (integer 0..4294967294)")
        elif not isinstance(item, str) or not 0 < len(item) <= 64 or not all(c.isalnum() or c in "-_." for c in item):
            raise ConfigError(item_key, "must be a group name (letters, digits, '-', '_', '.') or a gid")
        result.append(item)
    return result


def split_s3_url(url):
    """``s3://bucket/a//b/`` -> ("bucket", "a/b"): empty components dropped.

    Raises ValueError for a malformed URL, an invalid bucket or a ``.``/``..`` component
    (S3 keys are not paths, but a prefix that looks like one is refused rather than guessed at).
    """
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise ValueError("S3 prefix must start with s3://")
    bucket, _unused, key = url[5:].partition("/")
    if not valid_bucket_name(bucket):
        raise ValueError("invalid bucket name %r" % bucket[:80])
    parts = [part for part in key.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise ValueError("S3 prefix must not contain '.' or '..' components")
    if any(ord(c) < 32 or c == "\x7f" for c in key):
        raise ValueError("S3 prefix must not contain control characters")
    return bucket, "/".join(parts)


def prefix_allowed(bucket, key_prefix, allowed):
    """Whether (bucket, normalised key prefix) lies at or below one of ``allowed`` ((bucket, prefix) pairs)."""
    for allowed_bucket, allowed_prefix in allowed:
        if bucket != allowed_bucket:
            continue
        if not allowed_prefix or key_prefix == allowed_prefix or key_prefix.startswith(allowed_prefix + "/"):
            return True
    return False


@_rule("list of s3://bucket/key-prefix")
def _prefix_list(key, value):
    if not isinstance(value, list):
        raise ConfigError(key, "must be a list of s3://bucket/key-prefix URLs")
    result = []
    for index, item in enumerate(value):
        try:
            bucket, prefix = split_s3_url(item)
        except ValueError as exc:
            raise ConfigError("%s[%d]" % (key, index), "must be an s3://bucket/key-prefix URL (%s)" % exc) from None
        result.append("s3://%s/%s" % (bucket, prefix) if prefix else "s3://%s" % bucket)
    return result


@_rule("list of {name, argv, timeout_seconds}")
def _commands(key, value):
    if not isinstance(value, list):
        raise ConfigError(key, "must be a list of {name, argv, timeout_seconds}")
    result = []
    names = set()
    for index, item in enumerate(value):
        item_key = "%s[%d]" % (key, index)
        if not isinstance(item, dict):
            raise ConfigError(item_key, "must be an object {name, argv, timeout_seconds}")
        unknown = sorted(set(item) - {"name", "argv", "timeout_seconds"})
        if unknown:
            raise ConfigError("%s.%s" % (item_key, unknown[0]), "unknown key")
        name = item.get("name")
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
            raise ConfigError(item_key + ".name", "must be a non-empty string of letters, digits, '-', '_' or '.'")
        if name in names:
            raise ConfigError(item_key + ".name", "must be unique")
        names.add(name)
        argv = item.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ConfigError(item_key + ".argv", "must be a non-empty list of strings")
        if not argv[0].startswith("/"):
            raise ConfigError(item_key + ".argv", "must start with an absolute program path")
        timeout = _number(0, 3600, exclusive_min=True)(item_key + ".timeout_seconds", item.get("timeout_seconds", 30))
        result.append({"name": name, "argv": list(argv), "timeout_seconds": timeout})
    return result


def valid_bucket_name(name):
    """The S3 bucket naming rules (bucket_name.py, shared with module_utils; imported only when a
    configuration names buckets)."""
    from . import bucket_name

    return isinstance(name, str) and not bucket_name.problems(name)


# --- notify (issue 11): validators ---------------------------------------------------------------


@_rule("list of strings, absolute program first")
def _notify_command(key, value):
    if not isinstance(value, list) or not all(isinstance(a, str) and "\0" not in a for a in value):
        raise ConfigError(key, "must be a list of strings (the program and its arguments), [] for none")
    if value and not value[0].startswith("/"):
        raise ConfigError(key, "must start with an absolute program path")
    return list(value)


@_rule("user name or uid, not root")
def _notify_user(key, value):
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 2**32 - 1:
            raise ConfigError(key, "must be a user name or a uid (integer 1..4294967294)")
    elif not isinstance(value, str) or not 0 < len(value) <= 64 or not all(c.isalnum() or c in "-_.$" for c in value):
        raise ConfigError(key, "must be a user name (letters, digits, '-', '_', '.') or a uid")
    if value in (0, "0", "root"):
        raise ConfigError(key, "must not be root: the notify command runs as an unprivileged user")
    return value


def _notify_cross_checks(config):
    notify = config["notify"]
    if notify["command"] and notify["user"] is None:
        raise ConfigError("notify.user", "is required with notify.command (a non-root user to run it as)")


# --- end notify validators -------------------------------------------------------------------------

# fmt: off
_POSITIVE = _number(0, exclusive_min=True)
_NON_NEGATIVE = _number(0)
_MIN_PART = 5 * MIB

# The one table of the configuration: (section, what it is, ((key, default, validator, meaning), ...)).
# DEFAULTS, SCHEMA and the documentation (docs/configuration.md, test_config_docs.py) come from it.
TABLE = (
    (None, "Keys at the top of the object.", (
        ("dump_roots", [DEFAULT_DUMP_BASE, VENDOR_DUMP_BASE], _path_list,
         "Directories under which dumps live. The uploader reads dump dirs under these roots only; retention and "
         "`list` scan their direct children. The first is the base of the role's `NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY` "
         "(`<first>/dt-%d-cid-%c`); the runtime's default root is kept for workloads that ignore our settings."),
        ("spool_dir", layout.SPOOL_DIR, _abs_path,
         "Holds `incoming/` (1733, where hooks drop entries) and `queue/` (root only, entries the uploader claimed)."),
        ("state_dir", layout.STATE_DIR, _abs_path, "Uploader state: per-dump upload progress, locks, `status.json`."),
        ("log_file", None, _optional(_abs_path),
         "Mirror every log line to this file as well as syslog (debugging, tests)."),
    )),
    ("hook", "What runs inside the workload, as the workload's user.", (
        ("vendor_path", layout.VENDOR_HOOK, _abs_path,
         "The diverted vendor capture, run first with the same argv when it exists and is executable."),
        ("vendor_timeout_seconds", 120, _POSITIVE,
         "The vendor capture is killed (its whole process group) after this long; whatever ends the hook earlier "
         "ends that group too: nothing the vendor started outlives the hook."),
        ("budget_seconds", 10, _POSITIVE,
         "The hook's own work on top of the vendor timeout: a watchdog ends the hook with exit status 0 when "
         "`vendor_timeout_seconds + budget_seconds` pass."),
        ("dir_mode", 0o700, _mode(0o700), "Mode of directories the hook creates below a dump root."),
        ("root_mode", 0o1733, _mode(0o700),
         "Mode of a missing dump root the hook creates (root-owned when the role made it; create-only, sticky)."),
        ("file_mode", 0o600, _mode(0o600), "Mode of files the hook writes."),
        ("write_outside_roots", False, _bool,
         "Whether the hook writes its record when `--local-output-dir` is outside `dump_roots` (such dumps stay "
         "local). Whatever this says, a directory below `spool_dir`, or below `state_dir` outside a dump root, is "
         "refused and the dump redirected below the first root."),
        ("fallback_dump_dir", VENDOR_DUMP_BASE + "/dt-%d-cid-%c", _abs_path,
         "Used when the runtime passes no `--local-output-dir`; `%d %c %p %t %l %i %%` are expanded from the flags "
         "like the runtime does."),
        ("instance_id_file", "/sys/devices/virtual/dmi/id/board_asset_tag", _abs_path,
         "Where the instance id is read (no network on the hook's path)."),
        ("versions_file", layout.VERSIONS_FILE, _abs_path,
         "A JSON object of tool versions written by the role; copied into records."),
        ("max_value_chars", 4096, _number(64, integer=True),
         "Longer flag and environment values are truncated in records."),
        ("copy_runtime_generated", True, _bool,
         "Copy the `--runtime-generated` file into the dump dir when it is not there already; the vendor capture "
         "is then pointed at the copy."),
        ("max_copy_bytes", 256 * MIB, _number(0, integer=True),
         "Only a regular file (fstat on the opened file, links not followed) within this size is copied, never "
         "more than the size seen at open; anything else is refused and the vendor capture is not run for that call."),
        ("log_stderr", "errors", _choice("errors", "all", "none"),
         "Also write hook messages of this level to stderr, i.e. into the workload's own log."),
    )),
    ("uploader", "The root uploader (`neuron-core-dump upload`).", (
        ("trigger", "auto", _choice("auto", "systemd", "spawn", "none"),
         "How the hook gets the uploader going: `systemd` (the path unit watches `incoming/`), `spawn` (a detached "
         "worker, double fork + setsid), `auto` (systemd when `/run/systemd/system` exists, else spawn)."),
        ("cli_path", layout.CLI, _abs_path, "What a spawned worker runs."),
        ("settle_seconds", 2, _NON_NEGATIVE,
         "Files modified more recently are still being written (another rank's capture) and are uploaded later."),
        ("max_settle_wait_seconds", 60, _NON_NEGATIVE, "How long one run waits for them."),
        ("lock_wait_seconds", 600, _NON_NEGATIVE, "How long to wait for another uploader that holds a dump's lock."),
        ("stale_after_seconds", 3600, _POSITIVE,
         "A queued entry older than this makes `status` report the uploader unhealthy."),
        ("imds_enabled", True, _bool,
         "Ask IMDSv2 for the instance id when DMI has none (uploader only; cached in `state_dir/instance-id`)."),
        ("imds_timeout_seconds", 2, _POSITIVE, "Timeout of that request."),
        ("allowed_uids", [], _uid_list,
         "Only dumps whose entry was written by one of these uids are uploaded ([] = everyone); others stay local "
         "(refused by policy: counted in `status`, not an unhealthy uploader)."),
        ("allowed_groups", [], _group_list,
         "The same by group membership (primary or supplementary) of the entry's uid; with both lists set, a uid "
         "in either passes."),
        ("max_parallel_dumps", 4, _number(1, 64, integer=True),
         "Dumps worked on at the same time (each with up to `s3.max_concurrency` requests)."),
        ("max_pending_dumps_per_uid", 50, _number(1, integer=True),
         "Queued dumps of one uid worked on per run; the rest wait (held). A uid past it is over quota for retention."),
        ("max_bytes_per_uid_per_hour", 0, _number(0, integer=True),
         "Bytes uploaded for one uid in a rolling hour (0 = unlimited); past it the uid's dumps wait (held) and the "
         "uid is over quota for retention."),
        ("retry_max_interval_seconds", 30, _number(1, 60),
         "`upload --wait` retries dumps that failed on S3 itself with exponential backoff up to this interval, "
         "probing (HeadBucket) before each attempt."),
        ("retry_window_seconds", 900, _NON_NEGATIVE,
         "How long one `upload --wait` keeps retrying; after that the retry timer starts the next run."),
    )),
    ("s3", "Where and how the uploader writes.", (
        ("region", None, _optional(_string), "null = boto3's own resolution."),
        ("endpoint_url", None, _optional(_endpoint), "A private or test endpoint."),
        ("verify_tls", True, _bool, "May be false only together with `endpoint_url`."),
        ("addressing_style", "auto", _choice("auto", "path", "virtual"), "botocore's S3 addressing style."),
        ("sse", "AES256", _choice("AES256", "aws:kms", "none"), "Server-side encryption of every object."),
        ("kms_key_id", None, _optional(_string), "Sent as `SSEKMSKeyId`; only with `aws:kms`."),
        ("expected_bucket_owner", None, _optional(_account_id), "Sent as `ExpectedBucketOwner` on every call."),
        ("allowed_buckets", [], _bucket_list,
         "Prefixes naming another bucket are refused ([] = any; entries come from unprivileged users)."),
        ("allowed_prefixes", [], _prefix_list,
         "When set, a dump is uploaded only if its bucket equals and its key prefix starts with one of them, "
         "compared on whole `/` components after normalising. Refused dumps stay local, counted in `status`."),
        ("multipart_threshold_bytes", 8 * MIB, _number(_MIN_PART, integer=True),
         "Files from this size are uploaded in parts."),
        ("multipart_chunk_bytes", 8 * MIB, _number(_MIN_PART, 5 * 1024 * MIB, integer=True),
         "Part size, raised automatically so a file never needs more than 10,000 parts."),
        ("max_concurrency", 10, _number(1, 64, integer=True), "Parallel requests (files and parts)."),
        ("max_attempts", 5, _number(1, 20, integer=True),
         "Attempts per request (botocore's `standard` retry mode: exponential backoff with jitter, transient errors)."),
        ("retry_base_seconds", 0.5, _POSITIVE, "Accepted for compatibility and unused: botocore sets the backoff."),
        ("retry_max_seconds", 20, _POSITIVE, "Accepted for compatibility and unused, like `retry_base_seconds`."),
        ("connect_timeout_seconds", 5, _POSITIVE, "botocore's connect timeout."),
        ("read_timeout_seconds", 60, _POSITIVE, "botocore's read timeout."),
        ("conditional_put", True, _bool,
         "Use `IfNoneMatch=\"*\"` for a file's first upload where botocore supports it, so racing uploaders cannot "
         "both write it."),
        ("head_before_upload", False, _bool,
         "HEAD each key first and skip it when size and SHA-256 already match (one more request per file)."),
        ("selftest_prefix", None, _optional(_s3_url), "Where `self-test --s3` writes (and deletes) its probe object."),
    )),
    ("capture", "Extra diagnostics, run by the uploader as root, once per dump dir.", (
        ("enabled", True, _bool, "Run them at all."),
        ("commands", DEFAULT_CAPTURE_COMMANDS, _commands,
         "`{name, argv, timeout_seconds}` items; output is saved in the dump dir as `<instance id>-extra-<name>.txt`."),
        ("max_output_bytes", 4 * MIB, _number(1, integer=True), "Per command."),
        ("min_interval_seconds", 60, _NON_NEGATIVE,
         "At most one extra capture per this interval on the host (and one per dump dir): a flood of dumps does "
         "not run `journalctl` thousands of times."),
        ("readable_by_owner", False, _bool,
         "Capture output is root's (0600) unless true, then it is given to the dump's owner (the kernel log may "
         "hold lines the owner may not read otherwise)."),
    )),
    ("notify", "After a dump's manifest is written (docs/operations.md, \"Notification\").", (
        ("command", [], _notify_command,
         "Run once per written manifest with the dump's description as JSON on stdin, as `user`, in its own "
         "session, detached from the uploads; its process group is killed after `timeout_seconds` ([] = none)."),
        ("user", None, _optional(_notify_user),
         "Required with `command`; never root (refused here and again, by uid, when the command runs)."),
        ("timeout_seconds", 30, _number(0, 3600, exclusive_min=True), "Of the command."),
        ("max_concurrent", 4, _number(1, 64, integer=True), "Commands running at the same time; more wait."),
        ("journal", True, _bool,
         "Also log a structured journal entry per written manifest (`MESSAGE_ID` in docs/operations.md) for log "
         "shippers (syslog where there is no journal)."),
        ("journal_socket", "/run/systemd/journal/socket", _abs_path, "journald's native socket."),
    )),
    ("retention", "`neuron-core-dump gc`: uploaded and local-only dumps are deleted first, oldest first.", (
        ("max_bytes", 8 * GIB, _NON_NEGATIVE, "Soft cap over all roots."),
        ("max_count", 50, _number(0, integer=True), "Soft cap over all roots."),
        ("keep_free_bytes", 1 * GIB, _NON_NEGATIVE, "Soft free-space floor per filesystem."),
        ("hard_max_bytes", 16 * GIB, _NON_NEGATIVE,
         "Only past this (or `hard_keep_free_bytes`) is a dump still waiting for upload deleted, logged at LOG_CRIT "
         "and shown by `status`."),
        ("hard_keep_free_bytes", 256 * MIB, _NON_NEGATIVE, "The hard free-space floor."),
        ("min_age_seconds", 300, _NON_NEGATIVE, "Younger dumps are left alone below the hard caps."),
        ("gc_after_upload", True, _bool, "Run gc at the end of every upload run."),
    )),
    ("containers", "Adoption of dumps containers write into the container dump area (docs/containers.md).", (
        ("enabled", None, _optional(_bool), "null = when `<area>/shared` exists."),
        ("area", layout.CONTAINERS_AREA, _abs_path, "The `core_dump` option `container_dump_dir`."),
        ("s3_prefix", None, _optional(_s3_url),
         "Template for adopted dumps (null = they stay local): `%d %c` from the directory name, `%i` the host's "
         "instance id, `%p %t %l` the word `container`; `/containers/<attribution id>` is appended."),
        ("quiet_seconds", 120, _number(5),
         "Nothing below a candidate may have changed for this long, before and again after the claim; must exceed "
         "the run time of the image's vendor `neuron-dump`."),
        ("max_wait_seconds", 3600, _number(60),
         "A candidate still changing after this long is adopted as it is (`forced`)."),
        ("max_dump_bytes", 4 * GIB, _number(0, integer=True), "Copied per adopted dump; the rest is cut."),
        ("max_entries", 10000, _number(1, integer=True), "Of the quiescence walk."),
        ("max_depth", 4, _number(1, 16, integer=True), "Of the quiescence walk."),
        ("max_name_bytes", 255, _number(1, 255, integer=True), "Longest entry name adopted."),
        ("max_candidates_per_owner", 20, _number(1, integer=True), "Watched per owner uid per run."),
        ("max_adopt_per_run", 10, _number(1, integer=True), "Claimed per run, round-robin across owners."),
    )),
)

# fmt: on


DEFAULTS, SCHEMA = {}, {}
for _section, _what, _keys in TABLE:
    _defaults = DEFAULTS if _section is None else DEFAULTS.setdefault(_section, {})
    _checks = SCHEMA if _section is None else SCHEMA.setdefault(_section, {})
    for _key, _default, _check, _meaning in _keys:
        _defaults[_key], _checks[_key] = _default, _check


def _merge(schema, default_values, data, prefix):
    if not isinstance(data, dict):
        raise ConfigError(prefix.rstrip(".") or "(top level)", "must be a JSON object")
    unknown = sorted(set(data) - set(schema))
    if unknown:
        raise ConfigError(prefix + str(unknown[0]), "unknown key")
    result = {}
    for key, check in schema.items():
        if isinstance(check, dict):
            result[key] = _merge(check, default_values[key], data.get(key, {}), prefix + key + ".")
        elif key in data:
            result[key] = check(prefix + key, data[key])
        else:
            value = default_values[key]
            result[key] = list(value) if isinstance(value, list) else value
    return result


def _cross_checks(config):
    s3 = config["s3"]
    if not s3["verify_tls"] and not s3["endpoint_url"]:
        raise ConfigError("s3.verify_tls", "may be false only together with an explicit s3.endpoint_url")
    if s3["kms_key_id"] and s3["sse"] != "aws:kms":
        raise ConfigError("s3.kms_key_id", 'is allowed only with s3.sse = "aws:kms"')
    retention = config["retention"]
    if retention["hard_max_bytes"] < retention["max_bytes"]:
        raise ConfigError("retention.hard_max_bytes", "must be >= retention.max_bytes")
    if retention["hard_keep_free_bytes"] > retention["keep_free_bytes"]:
        raise ConfigError("retention.hard_keep_free_bytes", "must be <= retention.keep_free_bytes")
    _notify_cross_checks(config)


def validate(data):
    """Return the full configuration (defaults filled in) or raise ConfigError."""
    config = _merge(SCHEMA, DEFAULTS, data, "")
    _cross_checks(config)
    return config


def defaults():
    return validate({})


def read(path=DEFAULT_PATH):
    """Load and validate ``path``. A missing file means all defaults.

    Raises ConfigError for invalid content (including JSON syntax errors, reported
    under the key ``(file)``).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return defaults()
    except OSError as exc:
        raise ConfigError("(file)", "cannot be opened: %s" % exc) from None
    try:
        chunks = []
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError as exc:
                raise ConfigError("(file)", "cannot be read: %s" % exc) from None
            if not chunk:
                break
            chunks.append(chunk)
            if sum(len(c) for c in chunks) > 1024 * 1024:
                raise ConfigError("(file)", "must be smaller than 1 MiB")
    finally:
        os.close(fd)
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("(file)", "must be UTF-8 text") from None
    if not text.strip():
        return defaults()
    from . import fastjson

    try:
        data = fastjson.loads(text)
    except ValueError as exc:
        raise ConfigError("(file)", "must be valid JSON (%s)" % exc) from None
    return validate(data)


def document():
    """Markdown reference of every key, from ``TABLE`` (docs/configuration.md; a test keeps it current)."""
    import json

    out = []
    for section, what, keys in TABLE:
        out += ["### %s" % ("`%s`" % section if section else "Top level"), "", what, ""]
        out += ["| Key | Value | Default | Meaning |", "|---|---|---|---|"]
        for key, default, check, meaning in keys:
            if _describe(check).startswith("octal"):
                shown = '"%04o"' % default
            elif isinstance(default, list) and default and isinstance(default[0], dict):
                shown = ", ".join(item["name"] for item in default)
            else:
                shown = json.dumps(default)
            if isinstance(default, int) and default >= MIB and not default % MIB:
                shown += " (%d %s)" % ((default // GIB, "GiB") if not default % GIB else (default // MIB, "MiB"))
            out.append("| `%s` | %s | `%s` | %s |" % (key, _describe(check), shown, meaning))
        out.append("")
    return "\n".join(out)


def _describe(check):
    """What ``check`` accepts, in words (worded here rather than at import: the hook imports this module)."""
    if hasattr(check, "inner"):
        return _describe(check.inner) + " or null"
    if not hasattr(check, "bounds"):
        return check.rule
    integer, minimum, maximum, exclusive_min = check.bounds
    kind = "integer" if integer else "number"
    if minimum is not None and maximum is not None and not exclusive_min:
        return "%s %s..%s" % (kind, minimum, maximum)
    bounds = ["%s %s" % (">" if exclusive_min else ">=", minimum)] if minimum is not None else []
    return " ".join([kind] + bounds + (["<= %s" % maximum] if maximum is not None else []))
