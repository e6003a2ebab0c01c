"""Who and where we are: instance id, hostname, tool versions. No network here.

The hook runs while the runtime waits, so the instance id comes from DMI
(``board_asset_tag`` holds it on Nitro instances), then from the runtime's own
``--instance-id`` flag, then from the IMDSv2 answer the uploader cached earlier,
and finally from the hostname. IMDSv2 itself is queried only by the uploader
(see :mod:`neuron_core_dump.imds`).
"""

import os

from . import fsutil

IMDS_CACHE_NAME = "instance-id"
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def safe_token(text, max_len=64, empty="none"):
    """Make ``text`` usable inside a file name: [A-Za-z0-9._-] only, bounded length."""
    cleaned = "".join(c if c in _SAFE else "_" for c in str(text)[:max_len])
    cleaned = cleaned.lstrip(".")
    return cleaned or empty


def valid_instance_id(text):
    if not isinstance(text, str) or not text.startswith("i-"):
        return False
    body = text[2:]
    return len(body) in (8, 17) and all(c in "0123456789abcdef" for c in body)


def read_instance_id_file(path):
    try:
        text = fsutil.read_path(path, 256).decode("ascii", "replace").strip()
    except OSError:
        return None
    return text if valid_instance_id(text) else None


def instance_id(id_file, flag_value=None, state_dir=None):
    """Return (instance id, source). Never raises, never touches the network."""
    found = read_instance_id_file(id_file)
    if found:
        return found, "dmi"
    if valid_instance_id(flag_value):
        return flag_value, "flag"
    if state_dir:
        found = read_instance_id_file(os.path.join(state_dir, IMDS_CACHE_NAME))
        if found:
            return found, "imds-cache"
    return "host-" + safe_token(hostname(), 48, "unknown"), "hostname"


def hostname():
    try:
        return os.uname().nodename
    except Exception:  # uname cannot realistically fail; a name is not worth a crash
        return "unknown"


def tool_versions(path):
    """The role-written JSON object of tool versions, or {} (never runs dpkg/rpm)."""
    try:
        data = fsutil.read_path(path, 65536).decode("utf-8", "replace")
    except OSError:
        return {}
    from . import fastjson

    try:
        value = fastjson.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
