"""The metadata record the hook writes for every call, and its collision-free name.

Name: ``<iid>-ncd-<kind>-pid-<pid>-tid-<tid>-lid-<lid>[-nd<d>-nc<c>]-<unique>.json``
where kind is ``core`` (per-core call) or ``runtime`` (``--runtime-generated``)
and unique is nanosecond time plus random bits, so 64 ranks x 3 calls writing
into one ``%d-%c`` directory at the same moment never collide.
"""

import os
import time

from .hostinfo import hostname, safe_token
from .layout import VERSION

SCHEMA = "neuron-core-dump/record/v1"
MAX_ENV_VARS = 256


def kind_of(flags):
    return "runtime" if flags.is_runtime_generated() else "core"


def file_name(instance_id, flags, unique):
    parts = [
        safe_token(instance_id, 40),
        "ncd",
        kind_of(flags),
        "pid",
        safe_token(flags.get("pid", "none"), 20),
        "tid",
        safe_token(flags.get("tid", "none"), 20),
        "lid",
        safe_token(flags.get("log-id", "none"), 20),
    ]
    device = flags.get("device-id")
    core = flags.get("core-id")
    if device is not None or core is not None:
        parts.append("nd%s" % safe_token(device or "x", 12))
        parts.append("nc%s" % safe_token(core or "x", 12))
    parts.append(unique)
    return "-".join(parts) + ".json"


def neuron_env(environ, max_chars):
    result = {}
    for key in sorted(environ):
        if key.startswith("NEURON_") and len(result) < MAX_ENV_VARS:
            value = environ[key]
            result[key[:max_chars]] = value if len(value) <= max_chars else value[:max_chars] + "...(truncated)"
    return result


def build(flags, argv, instance_id, instance_id_source, versions, max_chars, extra):
    now_ns = time.time_ns()
    record = {
        "schema": SCHEMA,
        "hook_version": VERSION,
        "kind": kind_of(flags),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now_ns // 1000000000))
        + ".%06dZ" % (now_ns // 1000 % 1000000),
        "time_ns": now_ns,
        "flags": flags.as_record(max_chars),
        "positional": [a[:max_chars] for a in flags.positional[:64]],
        "argv_count": len(argv),
        "host": {
            "hostname": hostname(),
            "instance_id": instance_id,
            "instance_id_source": instance_id_source,
        },
        "process": {
            "hook_pid": os.getpid(),
            "parent_pid": os.getppid(),
            "uid": os.getuid(),
            "gid": os.getgid(),
        },
        "env": neuron_env(os.environ, max_chars),
        "tools": versions,
    }
    record.update(extra)
    return record
