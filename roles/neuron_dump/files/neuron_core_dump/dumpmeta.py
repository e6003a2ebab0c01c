"""What one dump is about, read from what is in it: job, error, NEFF, processes, cores.

Sources, most trusted first:

1. our hook's records (``*-ncd-*.json``, see :mod:`record`): the flags the runtime gave each
   call (``--date-time``, ``--cluster-id``, ``--error-code``, ``--error-location``,
   ``--neff-name``, ``--neff-uuid``, ``--pid``, ``--device-id``, ``--core-id``) and the
   ``NEURON_*`` environment, where ``NEURON_PJRT_PROCESS_INDEX`` is the worker's rank (the
   Neuron PJRT documentation: "the index (or rank) of the current worker process");
2. the runtime's own file names (docs/runtime-contract.md section 4):
   ``<iid>-nd<dev>-nc<core>-pid-<pid>-...``, ``<iid>-nd<dev>-cc-core-<n>-pid-<pid>-...`` and
   ``<iid>-nrt-pid-<pid>.log``, for dumps without records (vendor hook only, containers);
3. the dump directory's name, matched against the configured local-dir patterns (the
   ``%d``/``%c`` parts), expanded by the hook's own :func:`hook.expand_template`.

Everything here is written by the workload's user, so it is untrusted: records are opened
relative to the dump dir without following links, only regular files, at most
``RECORD_MAX_BYTES`` each, ``MAX_RECORDS`` and ``MAX_READ_BYTES`` per dump; values are typed and
capped (strings ``MAX_TEXT`` characters, id lists ``MAX_IDS`` entries); anything malformed is
ignored, never an error. Data files are never read.
"""

import os
import re

from . import fsutil, nrt_status

RECORD_MAX_BYTES = 256 * 1024  # a record of our hook with default limits is a few KiB
MAX_RECORDS = 512  # 64 ranks x 3 calls = 192 on the largest instance today
MAX_READ_BYTES = 8 * 1024 * 1024
MAX_TEXT = 256
MAX_IDS = 1024
_ID_MAX = 2**31 - 1
_TIME_NS_MAX = 2**63 - 1
RANK_VARIABLE = "NEURON_PJRT_PROCESS_INDEX"

# docs/runtime-contract.md 3.1 and 3.2: both date-time forms, the three cluster-id forms
DATE_TIME_FORM = r"[0-9]{8}-[0-9]{6}|[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}"
CLUSTER_ID_FORM = r"[0-9a-fA-F]{16}|0|none"
_DATE_TIME = re.compile(r"(?:%s)\Z" % DATE_TIME_FORM)
_CLUSTER_ID = re.compile(r"(?:%s)\Z" % CLUSTER_ID_FORM)
_CORE_FILE = re.compile(r"-nd([0-9]{1,9})-nc([0-9]{1,9})-pid-([0-9]{1,10})-")
_CC_FILE = re.compile(r"-nd([0-9]{1,9})-cc-core-[0-9]{1,9}-pid-([0-9]{1,10})-")
_LOG_FILE = re.compile(r"-nrt-pid-([0-9]{1,10})\.log\Z")
_SENTINEL = re.compile("\x00([dcptli])\x00")
_SENTINEL_FLAGS = {
    "date-time": "\x00d\x00",
    "cluster-id": "\x00c\x00",
    "pid": "\x00p\x00",
    "tid": "\x00t\x00",
    "log-id": "\x00l\x00",
    "instance-id": "\x00i\x00",
}


def job_key(d, c, name):
    """``dt-<d>-cid-<c>`` (the runtime default's form, so every host of a job agrees whatever
    its own local-dir pattern adds) when both parts are known, else the directory name."""
    return "dt-%s-cid-%s" % (d, c) if d and c else name


def name_matcher(template):
    """A regex for directory names the last component of ``template`` produces, with groups
    ``d`` and ``c``; None when that component does not use both."""
    from .hook import expand_template  # the hook's % rules, not a second copy of them

    last = template.rstrip("/").rpartition("/")[2]
    expanded = expand_template(last, _SENTINEL_FLAGS)
    parts = _SENTINEL.split(expanded)
    if "d" not in parts[1::2] or "c" not in parts[1::2]:
        return None
    regex, seen = [], set()
    for index, part in enumerate(parts):
        if index % 2 == 0:
            regex.append(re.escape(part))
        elif part in seen:
            regex.append("(?P=%s)" % part)
        elif part in ("d", "c"):
            seen.add(part)
            regex.append("(?P<%s>%s)" % (part, DATE_TIME_FORM if part == "d" else CLUSTER_ID_FORM))
        else:
            regex.append("[^/]+?")
    return re.compile("".join(regex) + r"\Z")


def job_from_name(name, matchers):
    for matcher in matchers:
        found = matcher.match(name) if isinstance(name, str) else None
        if found:
            return found.group("d"), found.group("c")
    return None, None


class Meta:
    def __init__(self):
        self.d = self.c = None
        self.job_source = None
        self.time_ns = None
        self.error_code = self.error_name = self.error_location = None
        self.neff_name = self.neff_uuid = None
        self.pids, self.ranks, self.devices, self.cores = set(), set(), set(), set()
        self.records = 0
        self.records_ignored = 0

    def as_dict(self):
        return {
            "job": {"d": self.d, "c": self.c},
            "job_source": self.job_source,
            "error_code": self.error_code,
            "error_name": self.error_name,
            "error_location": self.error_location,
            "neff_name": self.neff_name,
            "neff_uuid": self.neff_uuid,
            "pids": sorted(self.pids),
            "ranks": sorted(self.ranks),
            "devices": sorted(self.devices),
            "cores": sorted(self.cores),
            "record_count": self.records,
            "records_ignored": self.records_ignored,
        }


def read(path, files, matchers):
    """The :class:`Meta` of the dump dir ``path`` whose regular files are ``files`` ((name, size, mtime))."""
    meta = Meta()
    for name, _size, _mtime in files:
        _from_file_name(meta, name)
    records = sorted(name for name, _size, _mtime in files if _is_record(name))
    if records:
        try:
            fd = fsutil.walk(path)
        except OSError:
            fd = None
        if fd is not None:
            try:
                _from_records(meta, fd, records)
            finally:
                os.close(fd)
    if meta.d and meta.c:
        meta.job_source = "record"
    else:
        meta.d, meta.c = job_from_name(os.path.basename(path), matchers)
        meta.job_source = "name" if meta.d else None
    return meta


def _is_record(name):
    return isinstance(name, str) and "-ncd-" in name and name.endswith(".json")


def _add(ids, value):
    if len(ids) < MAX_IDS and isinstance(value, int) and 0 <= value <= _ID_MAX:
        ids.add(value)


def _from_file_name(meta, name):
    if not isinstance(name, str):
        return
    found = _CORE_FILE.search(name)
    if found:
        _add(meta.devices, int(found.group(1)))
        _add(meta.cores, int(found.group(2)))
        _add(meta.pids, int(found.group(3)))
        return
    found = _CC_FILE.search(name)
    if found:
        _add(meta.devices, int(found.group(1)))
        _add(meta.pids, int(found.group(2)))
        return
    found = _LOG_FILE.search(name)
    if found:
        _add(meta.pids, int(found.group(1)))


def _from_records(meta, fd, names):
    parsed = []
    budget = MAX_READ_BYTES
    for name in names[:MAX_RECORDS]:
        try:
            info = os.lstat(name, dir_fd=fd)
            if info.st_size > min(RECORD_MAX_BYTES, budget):
                raise ValueError("too large")
            budget -= info.st_size
            data = fsutil.load_json(fd, name, RECORD_MAX_BYTES)
        except Exception:  # links, FIFOs, garbage, nesting too deep: a forged record is ignored
            meta.records_ignored += 1
            continue
        if not isinstance(data, dict) or not isinstance(data.get("flags"), dict):
            meta.records_ignored += 1
            continue
        parsed.append(data)
    meta.records_ignored += max(0, len(names) - MAX_RECORDS)
    meta.records = len(parsed)
    parsed.sort(key=_record_time)
    for data in parsed:
        _from_record(meta, data)


def _record_time(data):
    value = data.get("time_ns")
    return value if _valid_time(value) else _TIME_NS_MAX


def _valid_time(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < _TIME_NS_MAX


def _text(flags, name):
    """The last non-empty string of a flag (repeated flags are lists), capped; None otherwise."""
    value = flags.get(name)
    if isinstance(value, list):
        value = next((v for v in reversed(value[:64]) if isinstance(v, str) and v), None)
    if not isinstance(value, str) or not value:
        return None
    return value[:MAX_TEXT]


def _number(text):
    if text is None or not text.isdigit() or not text.isascii() or len(text) > 10:
        return None
    return int(text)


def _from_record(meta, data):
    flags = data["flags"]
    if _valid_time(data.get("time_ns")) and meta.time_ns is None:
        meta.time_ns = data["time_ns"]
    d, c = _text(flags, "date-time"), _text(flags, "cluster-id")
    if meta.d is None and d and c and _DATE_TIME.match(d) and _CLUSTER_ID.match(c):
        meta.d, meta.c = d, c
    code_text = _text(flags, "error-code")
    if meta.error_code is None and meta.error_name is None and code_text:
        meta.error_code, meta.error_name = nrt_status.parse(code_text)
    for attribute, flag in (
        ("error_location", "error-location"),
        ("neff_name", "neff-name"),
        ("neff_uuid", "neff-uuid"),
    ):
        if getattr(meta, attribute) is None:
            setattr(meta, attribute, _text(flags, flag))
    for ids, flag in ((meta.pids, "pid"), (meta.devices, "device-id"), (meta.cores, "core-id")):
        _add(ids, _number(_text(flags, flag)))
    env = data.get("env")
    if isinstance(env, dict):
        rank = env.get(RANK_VARIABLE)
        _add(meta.ranks, _number(rank[:12]) if isinstance(rank, str) else None)
