"""IMDSv2 instance-id lookup, for the uploader only (never on the hook's path).

The answer is cached in ``state_dir/instance-id`` (mode 0644) so the hook can use
it without any network wait on hosts whose DMI data carries no instance id.
"""

import os

from . import fsutil
from .hostinfo import IMDS_CACHE_NAME, valid_instance_id

ENDPOINT = "http://169.254.169.254"


def fetch_instance_id(timeout, endpoint=ENDPOINT):
    import urllib.request

    token_request = urllib.request.Request(
        endpoint + "/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    )
    with urllib.request.urlopen(token_request, timeout=timeout) as answer:  # fixed link-local URL
        token = answer.read(4096).decode("ascii", "replace")
    id_request = urllib.request.Request(
        endpoint + "/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token}
    )
    with urllib.request.urlopen(id_request, timeout=timeout) as answer:  # fixed link-local URL
        value = answer.read(256).decode("ascii", "replace").strip()
    return value if valid_instance_id(value) else None


def cache_instance_id(state_dir, instance_id):
    fd = fsutil.walk(state_dir)
    try:
        fsutil.replace_file(fd, IMDS_CACHE_NAME, (instance_id + "\n").encode("ascii"), 0o644, fsync=False)
    finally:
        os.close(fd)
