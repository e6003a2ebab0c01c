"""The configuration file ``/etc/neuron-core-dump/config.json``.

The role writes it (``to_nice_json``). Every key is optional: a missing key takes
the default below, so an empty object ``{}`` is a valid file and so is a missing
file. Unknown keys are errors (they are almost always typos). An invalid file makes
the CLI exit non-zero with a message naming the key and the rule; the hook logs the
problem and carries on with the built-in defaults, because it must never lose a dump.

Top level
    ``dump_roots`` (list of absolute paths; default
    ``["/var/lib/neuron-core-dump/dumps", "/tmp/neuron-core-dump"]``)
        Directories under which dumps live. The uploader reads dump dirs under
        these roots only; retention and ``list`` scan their direct children. The
        first entry is the base used by the role's ``NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY``
        (``<first>/dt-%d-cid-%c``); the vendor default ``/tmp/neuron-core-dump`` is
        kept so dumps of workloads that ignore our settings are still handled.
    ``spool_dir`` (absolute path; default ``/var/spool/neuron-core-dump``)
        Holds ``incoming/`` (mode 1733, where hooks drop entries) and ``queue/``
        (root only, entries claimed by the uploader).
    ``state_dir`` (absolute path; default ``/var/lib/neuron-core-dump``)
        Uploader state: per-dump upload progress, locks, ``status.json``.
    ``log_file`` (absolute path or null; default null)
        Mirror every log line to this file as well as syslog (debugging, tests).

``hook`` (what runs inside the workload, as the workload's user)
    ``vendor_path`` (default ``/opt/aws/neuron/bin/neuron-dump.distrib``)
        The diverted vendor capture. Run first with the same argv when it exists
        and is executable.
    ``vendor_timeout_seconds`` (number > 0; default 120)
        The vendor capture is killed (its whole process group) after this long. Whatever
        ends the hook earlier (a job scheduler's SIGKILL, the watchdog) ends that group too,
        and so does the hook's own end: nothing the vendor started outlives the hook.
    ``budget_seconds`` (number > 0; default 10)
        The hook's own work on top of the vendor timeout. A watchdog ends the hook
        with exit status 0 when ``vendor_timeout_seconds + budget_seconds`` pass.
    ``dir_mode`` (octal string or int; default ``"0700"``) mode of directories the
        hook creates below a dump root. Must include ``0700``.
    ``root_mode`` (default ``"1733"``) mode of a missing dump root the hook creates
        (root-owned when the role made it; create-only for users, sticky).
    ``file_mode`` (default ``"0600"``) mode of files the hook writes. Must include ``0600``.
    ``write_outside_roots`` (bool; default false)
        Whether the hook writes its record when ``--local-output-dir`` is outside
        ``dump_roots``. Such dumps stay local: the uploader refuses them. Whatever this
        says, the hook never writes below ``spool_dir``, nor below ``state_dir`` except
        inside a dump root placed there: such a directory (given directly, through ``..``,
        a relative path or a link) is refused and the dump redirected below the first root.
    ``fallback_dump_dir`` (default ``/tmp/neuron-core-dump/dt-%d-cid-%c``)
        Used when the runtime passes no ``--local-output-dir``; ``%d %c %p %t %l %i %%``
        are expanded from the flags like the runtime does.
    ``instance_id_file`` (default ``/sys/devices/virtual/dmi/id/board_asset_tag``)
        Where the instance id is read (no network on the hook's path).
    ``versions_file`` (default ``/var/lib/neuron-core-dump/versions.json``)
        A JSON object of tool versions written by the role; copied into records.
    ``max_value_chars`` (int >= 64; default 4096) longer flag/env values are truncated in records.
    ``copy_runtime_generated`` (bool; default true) copy the ``--runtime-generated``
        file into the dump dir when it is not already there; the vendor capture is then
        pointed at that copy.
    ``max_copy_bytes`` (int >= 0; default 268435456) larger runtime files are not copied.
        Only a regular file (checked with fstat on the opened file, links not followed)
        within this size is copied, and never more than the size seen at open. Anything
        else (``/dev/zero``, a FIFO, a larger file) is refused and the vendor capture is not
        run for that call, since copying that file is all it would do.
    ``log_stderr`` (``"errors"``, ``"all"`` or ``"none"``; default ``"errors"``)
        Also write hook errors to stderr, i.e. into the workload's own log.

``uploader``
    ``trigger`` (``"auto"``, ``"systemd"``, ``"spawn"``, ``"none"``; default ``"auto"``)
        How the hook gets the uploader going. ``systemd``: the path unit watches
        ``incoming/``, the hook does nothing more. ``spawn``: the hook starts a
        detached worker (double fork + setsid). ``auto``: systemd when
        ``/run/systemd/system`` exists, else spawn.
    ``cli_path`` (default ``/usr/local/bin/neuron-core-dump``) what a spawned worker runs.
    ``settle_seconds`` (number >= 0; default 2) files modified more recently are
        still being written (another rank's capture) and are uploaded later.
    ``max_settle_wait_seconds`` (number >= 0; default 60) how long one run waits for them.
    ``lock_wait_seconds`` (number >= 0; default 600) how long to wait for another
        uploader that holds a dump's lock.
    ``stale_after_seconds`` (number > 0; default 3600) a queued entry older than this
        makes ``status`` report the uploader unhealthy.
    ``imds_enabled`` (bool; default true) ask IMDSv2 for the instance id when DMI has
        none (uploader only; the answer is cached in ``state_dir/instance-id``).
    ``imds_timeout_seconds`` (number > 0; default 2)
    ``allowed_uids`` (list of uids; default [] = everyone) only dumps whose entry
        was written by one of these uids are uploaded; others stay local (refused
        by policy: counted in ``status``, not an unhealthy uploader).
    ``allowed_groups`` (list of group names or gids; default [] = everyone) the same
        by group membership (primary or supplementary) of the entry's uid. With both
        lists set, a uid in either passes.
    ``max_parallel_dumps`` (int 1..64; default 4) dumps worked on at the same time
        (each with up to ``s3.max_concurrency`` requests).
    ``max_pending_dumps_per_uid`` (int >= 1; default 50) queued dumps of one uid
        worked on per run; the rest wait (counted as held) and resume when these are
        done. A uid past this limit is over quota for retention.
    ``max_bytes_per_uid_per_hour`` (int >= 0; default 0 = unlimited) bytes uploaded
        for one uid in a rolling hour; past it the uid's dumps wait (counted as held)
        and resume when the hour allows, and the uid is over quota for retention.
    ``retry_max_interval_seconds`` (number 1..60; default 30) ``upload --wait`` keeps
        retrying dumps that failed on S3 itself, backing off exponentially up to this
        interval with a cheap probe (HeadBucket) before each new attempt, so uploads
        resume within this long after an outage ends.
    ``retry_window_seconds`` (number >= 0; default 900) how long one ``upload --wait``
        keeps retrying; after that the retry timer starts the next run.

``s3``
    ``region`` (string or null; default null = boto3's own resolution)
    ``endpoint_url`` (``http(s)://...`` or null; default null) private/test endpoint.
    ``verify_tls`` (bool; default true) may be false only together with ``endpoint_url``.
    ``addressing_style`` (``"auto"``, ``"path"``, ``"virtual"``; default ``"auto"``)
    ``sse`` (``"AES256"``, ``"aws:kms"`` or ``"none"``; default ``"AES256"``)
    ``kms_key_id`` (string or null; default null) sent as ``SSEKMSKeyId``; only with ``aws:kms``.
    ``expected_bucket_owner`` (12-digit account id or null; default null) sent as
        ``ExpectedBucketOwner`` on every call.
    ``allowed_buckets`` (list of bucket names; default [] = any) prefixes naming
        another bucket are refused (entries come from unprivileged users).
    ``allowed_prefixes`` (list of ``s3://bucket/key-prefix``; default [] = any) when
        set, a dump is uploaded only if its bucket equals and its key prefix starts
        with one of them, compared on whole ``/``-separated components after
        normalising (empty components dropped; ``.`` and ``..`` refused). Refused
        dumps stay local and are counted in ``status`` (not an unhealthy uploader).
    ``multipart_threshold_bytes`` (int >= 5 MiB; default 8 MiB)
    ``multipart_chunk_bytes`` (int >= 5 MiB; default 8 MiB; raised automatically so a
        file never needs more than 10,000 parts)
    ``max_concurrency`` (int 1..64; default 10) parallel requests (files and parts).
    ``max_attempts`` (int 1..20; default 5) attempts per request (botocore's
        ``standard`` retry mode: exponential backoff with jitter, transient errors only).
    ``retry_base_seconds`` (number > 0; default 0.5), ``retry_max_seconds`` (default 20)
        accepted for compatibility and unused: botocore's standard mode sets the backoff.
    ``connect_timeout_seconds`` (default 5), ``read_timeout_seconds`` (default 60)
    ``conditional_put`` (bool; default true) use ``IfNoneMatch="*"`` for a file's first
        upload where botocore supports it, so racing uploaders cannot both write it.
    ``head_before_upload`` (bool; default false) HEAD each key first and skip it when
        size and SHA-256 checksum already match (costs one request per file).
    ``selftest_prefix`` (``s3://bucket/prefix`` or null; default null) where
        ``self-test --s3`` writes (and deletes) its probe object.

``capture`` (extra diagnostics, run by the uploader as root, once per dump dir)
    ``enabled`` (bool; default true)
    ``commands`` (list of ``{"name", "argv", "timeout_seconds"}``; default: neuron-ls,
        the kernel log tail, EFA hardware counters). Output is saved in the dump dir
        as ``<instance id>-extra-<name>.txt``.
    ``max_output_bytes`` (int > 0; default 4 MiB) per command.
    ``min_interval_seconds`` (number >= 0; default 60) at most one extra capture per
        this interval on the host (and always at most one per dump dir): a flood of
        dumps does not run ``journalctl`` thousands of times.
    ``readable_by_owner`` (bool; default false) capture output is root's (0600 root)
        unless this is true, then it is given to the dump's owner: the kernel log may
        hold lines the owner is not allowed to read otherwise.

``notify`` (after a dump's manifest is written; see docs/operations.md, "Notification")
    ``command`` (list of strings, absolute program first; default [] = no command) run once per
        written manifest with the dump's description as JSON on stdin, as ``user``, in its own
        session, detached from the uploads; killed (its process group) after ``timeout_seconds``.
    ``user`` (user name or uid; required with ``command``) never root: uid 0 is refused here and
        again, by uid, when the command runs (``check-config`` also checks the user exists).
    ``timeout_seconds`` (number 0 < t <= 3600; default 30)
    ``max_concurrent`` (int 1..64; default 4) commands running at the same time; more wait.
    ``journal`` (bool; default true) also log a structured journal entry per written manifest,
        ``MESSAGE_ID=`` :data:`notify.MESSAGE_ID`, for log shippers (syslog where there is no journal).
    ``journal_socket`` (absolute path; default ``/run/systemd/journal/socket``) journald's native socket.

``retention`` (``neuron-core-dump gc``)
    ``max_bytes`` (default 8 GiB) and ``max_count`` (default 50): soft caps over all roots.
    ``keep_free_bytes`` (default 1 GiB): soft free-space floor per filesystem.
    Past a soft cap, uploaded and local-only dumps are deleted, oldest first.
    ``hard_max_bytes`` (default 16 GiB) and ``hard_keep_free_bytes`` (default 256 MiB):
        only past these is a dump that still waits for upload deleted, and that is
        logged at LOG_CRIT and shown by ``status``.
    ``min_age_seconds`` (default 300): younger dumps are left alone below the hard caps.
    ``gc_after_upload`` (bool; default true) run gc at the end of every upload run.

``containers`` (adoption of dumps containers write into the container dump area; see
:mod:`adopt` and docs/containers.md)
    ``enabled`` (bool or null; default null = when ``<area>/shared`` exists)
    ``area`` (absolute path; default ``/var/lib/neuron-core-dump/containers``, the
        ``core_dump`` option ``container_dump_dir``)
    ``s3_prefix`` (``s3://bucket/prefix`` template or null; default null = adopted dumps
        stay local) ``%d %c`` from the directory name, ``%i`` the host's instance id,
        ``%p %t %l`` the word ``container``; ``/containers/<attribution id>`` is appended.
    ``quiet_seconds`` (number >= 5; default 120) nothing below a candidate may have
        changed for this long, before and again after the claim. Must exceed the run
        time of the image's vendor ``neuron-dump``.
    ``max_wait_seconds`` (number >= 60; default 3600) a candidate still changing after
        this long is adopted as it is (marked ``forced``).
    ``max_dump_bytes`` (int >= 0; default 4 GiB) copied per adopted dump; the rest is cut.
    ``max_entries`` (int >= 1; default 10000), ``max_depth`` (int 1..16; default 4) of the
        quiescence walk; ``max_name_bytes`` (int 1..255; default 255).
    ``max_candidates_per_owner`` (int >= 1; default 20) watched per owner uid per run.
    ``max_adopt_per_run`` (int >= 1; default 10) claimed per run, round-robin across owners.
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

DEFAULTS = {
    "dump_roots": [DEFAULT_DUMP_BASE, VENDOR_DUMP_BASE],
    "spool_dir": layout.SPOOL_DIR,
    "state_dir": layout.STATE_DIR,
    "log_file": None,
    "hook": {
        "vendor_path": layout.VENDOR_HOOK,
        "vendor_timeout_seconds": 120,
        "budget_seconds": 10,
        "dir_mode": 0o700,
        "root_mode": 0o1733,
        "file_mode": 0o600,
        "write_outside_roots": False,
        "fallback_dump_dir": VENDOR_DUMP_BASE + "/dt-%d-cid-%c",
        "instance_id_file": "/sys/devices/virtual/dmi/id/board_asset_tag",
        "versions_file": layout.VERSIONS_FILE,
        "max_value_chars": 4096,
        "copy_runtime_generated": True,
        "max_copy_bytes": 256 * MIB,
        "log_stderr": "errors",
    },
    "uploader": {
        "trigger": "auto",
        "cli_path": layout.CLI,
        "settle_seconds": 2,
        "max_settle_wait_seconds": 60,
        "lock_wait_seconds": 600,
        "stale_after_seconds": 3600,
        "imds_enabled": True,
        "imds_timeout_seconds": 2,
        "allowed_uids": [],
        "allowed_groups": [],
        "max_parallel_dumps": 4,
        "max_pending_dumps_per_uid": 50,
        "max_bytes_per_uid_per_hour": 0,
        "retry_max_interval_seconds": 30,
        "retry_window_seconds": 900,
    },
    "s3": {
        "region": None,
        "endpoint_url": None,
        "verify_tls": True,
        "addressing_style": "auto",
        "sse": "AES256",
        "kms_key_id": None,
        "expected_bucket_owner": None,
        "allowed_buckets": [],
        "allowed_prefixes": [],
        "multipart_threshold_bytes": 8 * MIB,
        "multipart_chunk_bytes": 8 * MIB,
        "max_concurrency": 10,
        "max_attempts": 5,
        "retry_base_seconds": 0.5,
        "retry_max_seconds": 20,
        "connect_timeout_seconds": 5,
        "read_timeout_seconds": 60,
        "conditional_put": True,
        "head_before_upload": False,
        "selftest_prefix": None,
    },
    "capture": {
        "enabled": True,
        "commands": DEFAULT_CAPTURE_COMMANDS,
        "max_output_bytes": 4 * MIB,
        "min_interval_seconds": 60,
        "readable_by_owner": False,
    },
    # --- notify (issue 11) ---
    "notify": {
        "command": [],
        "user": None,
        "timeout_seconds": 30,
        "max_concurrent": 4,
        "journal": True,
        "journal_socket": "/run/systemd/journal/socket",
    },
    # --- end notify ---
    "retention": {
        "max_bytes": 8 * GIB,
        "max_count": 50,
        "keep_free_bytes": 1 * GIB,
        "hard_max_bytes": 16 * GIB,
        "hard_keep_free_bytes": 256 * MIB,
        "min_age_seconds": 300,
        "gc_after_upload": True,
    },
    "containers": {
        "enabled": None,
        "area": layout.CONTAINERS_AREA,
        "s3_prefix": None,
        "quiet_seconds": 120,
        "max_wait_seconds": 3600,
        "max_dump_bytes": 4 * GIB,
        "max_entries": 10000,
        "max_depth": 4,
        "max_name_bytes": 255,
        "max_candidates_per_owner": 20,
        "max_adopt_per_run": 10,
    },
}


class ConfigError(ValueError):
    """An invalid configuration value: ``key`` is the dotted key, ``rule`` what it must be."""

    def __init__(self, key, rule):
        ValueError.__init__(self, "%s: %s" % (key, rule))
        self.key = key
        self.rule = rule


# --- validators: each takes (key, value) and returns the normalised value or raises ConfigError


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

    return check


def _abs_path(key, value):
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise ConfigError(key, "must be an absolute path")
    if ".." in value.split("/"):
        raise ConfigError(key, "must not contain '..'")
    return value


def _optional(check):
    def optional(key, value):
        return None if value is None else check(key, value)

    return optional


def _string(key, value):
    if not isinstance(value, str) or not value:
        raise ConfigError(key, "must be a non-empty string")
    return value


def _choice(*choices):
    def check(key, value):
        if value not in choices:
            raise ConfigError(key, "must be one of %s" % ", ".join(repr(c) for c in choices))
        return value

    return check


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

    return check


def _path_list(key, value):
    if not isinstance(value, list) or not value:
        raise ConfigError(key, "must be a non-empty list of absolute paths")
    return [_abs_path("%s[%d]" % (key, index), item).rstrip("/") or "/" for index, item in enumerate(value)]


def _endpoint(key, value):
    if not isinstance(value, str) or not (value.startswith("http://") or value.startswith("https://")):
        raise ConfigError(key, "must be an http:// or https:// URL")
    return value


def _account_id(key, value):
    if not isinstance(value, str) or len(value) != 12 or not value.isdigit():
        raise ConfigError(key, "must be a 12-digit AWS account id (a string)")
    return value


def _bucket_name(key, value):
    if not valid_bucket_name(value):
        raise ConfigError(key, "must be a valid S3 bucket name")
    return value


def _s3_url(key, value):
    if not isinstance(value, str) or not value.startswith("s3://") or not valid_bucket_name(value[5:].split("/")[0]):
        raise ConfigError(key, "must be an s3://bucket/prefix URL with a valid bucket name")
    return value


def _bucket_list(key, value):
    if not isinstance(value, list):
        raise ConfigError(key, "must be a list of bucket names")
    return [_bucket_name("%s[%d]" % (key, index), item) for index, item in enumerate(value)]


def _uid_list(key, value):
    if not isinstance(value, list):
        raise ConfigError(key, "must be a list of uids (integers)")
    result = []
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < 2**32 - 1:
            raise ConfigError("%s[%d]" % (key, index), "must be a uid (integer 0..4294967294)")
        result.append(item)
    return result


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
    if not isinstance(name, str) or not 3 <= len(name) <= 63:
        return False
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789.-")
    return all(c in allowed for c in name) and name[0] not in ".-" and name[-1] not in ".-"


# --- notify (issue 11): validators ---------------------------------------------------------------


def _notify_command(key, value):
    if not isinstance(value, list) or not all(isinstance(a, str) and "\0" not in a for a in value):
        raise ConfigError(key, "must be a list of strings (the program and its arguments), [] for none")
    if value and not value[0].startswith("/"):
        raise ConfigError(key, "must start with an absolute program path")
    return list(value)


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

_POSITIVE = _number(0, exclusive_min=True)
_NON_NEGATIVE = _number(0)
_MIN_PART = 5 * MIB

SCHEMA = {
    "dump_roots": _path_list,
    "spool_dir": _abs_path,
    "state_dir": _abs_path,
    "log_file": _optional(_abs_path),
    "hook": {
        "vendor_path": _abs_path,
        "vendor_timeout_seconds": _POSITIVE,
        "budget_seconds": _POSITIVE,
        "dir_mode": _mode(0o700),
        "root_mode": _mode(0o700),
        "file_mode": _mode(0o600),
        "write_outside_roots": _bool,
        "fallback_dump_dir": _abs_path,
        "instance_id_file": _abs_path,
        "versions_file": _abs_path,
        "max_value_chars": _number(64, integer=True),
        "copy_runtime_generated": _bool,
        "max_copy_bytes": _number(0, integer=True),
        "log_stderr": _choice("errors", "all", "none"),
    },
    "uploader": {
        "trigger": _choice("auto", "systemd", "spawn", "none"),
        "cli_path": _abs_path,
        "settle_seconds": _NON_NEGATIVE,
        "max_settle_wait_seconds": _NON_NEGATIVE,
        "lock_wait_seconds": _NON_NEGATIVE,
        "stale_after_seconds": _POSITIVE,
        "imds_enabled": _bool,
        "imds_timeout_seconds": _POSITIVE,
        "allowed_uids": _uid_list,
        "allowed_groups": _group_list,
        "max_parallel_dumps": _number(1, 64, integer=True),
        "max_pending_dumps_per_uid": _number(1, integer=True),
        "max_bytes_per_uid_per_hour": _number(0, integer=True),
        "retry_max_interval_seconds": _number(1, 60),
        "retry_window_seconds": _NON_NEGATIVE,
    },
    "s3": {
        "region": _optional(_string),
        "endpoint_url": _optional(_endpoint),
        "verify_tls": _bool,
        "addressing_style": _choice("auto", "path", "virtual"),
        "sse": _choice("AES256", "aws:kms", "none"),
        "kms_key_id": _optional(_string),
        "expected_bucket_owner": _optional(_account_id),
        "allowed_buckets": _bucket_list,
        "allowed_prefixes": _prefix_list,
        "multipart_threshold_bytes": _number(_MIN_PART, integer=True),
        "multipart_chunk_bytes": _number(_MIN_PART, 5 * 1024 * MIB, integer=True),
        "max_concurrency": _number(1, 64, integer=True),
        "max_attempts": _number(1, 20, integer=True),
        "retry_base_seconds": _POSITIVE,
        "retry_max_seconds": _POSITIVE,
        "connect_timeout_seconds": _POSITIVE,
        "read_timeout_seconds": _POSITIVE,
        "conditional_put": _bool,
        "head_before_upload": _bool,
        "selftest_prefix": _optional(_s3_url),
    },
    "capture": {
        "enabled": _bool,
        "commands": _commands,
        "max_output_bytes": _number(1, integer=True),
        "min_interval_seconds": _NON_NEGATIVE,
        "readable_by_owner": _bool,
    },
    "notify": {
        "command": _notify_command,
        "user": _optional(_notify_user),
        "timeout_seconds": _number(0, 3600, exclusive_min=True),
        "max_concurrent": _number(1, 64, integer=True),
        "journal": _bool,
        "journal_socket": _abs_path,
    },
    "retention": {
        "max_bytes": _NON_NEGATIVE,
        "max_count": _number(0, integer=True),
        "keep_free_bytes": _NON_NEGATIVE,
        "hard_max_bytes": _NON_NEGATIVE,
        "hard_keep_free_bytes": _NON_NEGATIVE,
        "min_age_seconds": _NON_NEGATIVE,
        "gc_after_upload": _bool,
    },
    "containers": {
        "enabled": _optional(_bool),
        "area": _abs_path,
        "s3_prefix": _optional(_s3_url),
        "quiet_seconds": _number(5),
        "max_wait_seconds": _number(60),
        "max_dump_bytes": _number(0, integer=True),
        "max_entries": _number(1, integer=True),
        "max_depth": _number(1, 16, integer=True),
        "max_name_bytes": _number(1, 255, integer=True),
        "max_candidates_per_owner": _number(1, integer=True),
        "max_adopt_per_run": _number(1, integer=True),
    },
}


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
