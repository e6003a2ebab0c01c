"""Helpers shared by the testinfra suites of every molecule scenario."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "bed"))
import bed_s3  # noqa: E402  (the bed's S3 client lives with the bed)

STAND_IN = os.path.join(REPO_ROOT, "tests", "bed", "fake_nrt.py")
STAND_IN_IN_HOST = "/usr/local/lib/ncd-bed/fake_nrt.py"
HOOK = "/opt/aws/neuron/bin/neuron-dump"
DUMP_VARS = ("NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY", "NEURON_RT_S3_CORE_DUMP_PREFIX")


def container_name(host) -> str:
    return host.backend.name


def copy_into(host, src: str, dest: str) -> None:
    host.run_expect([0], "mkdir -p %s" % shlex.quote(os.path.dirname(dest)))
    subprocess.run(["podman", "cp", src, "%s:%s" % (container_name(host), dest)], check=True)


def stand_in_command(env: dict | None = None, args: str = "", user: str | None = None) -> str:
    """The command line that starts the stand-in with exactly ``env`` (plus PATH)."""
    assignments = " ".join("%s=%s" % (key, shlex.quote(value)) for key, value in (env or {}).items())
    command = "env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin %s python3 %s --report - %s" % (
        assignments,
        STAND_IN_IN_HOST,
        args,
    )
    return "runuser -u %s -- %s" % (user, command) if user else command


def run_stand_in(host, env: dict | None = None, args: str = "", user: str | None = None) -> dict:
    result = host.run(stand_in_command(env, args, user))
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def hook_calls(report: dict) -> list:
    return [call for rank in report["ranks"] for call in rank["calls"]]


def s3_client():
    """boto3 against the bed's moto server (dummy credentials: IAM cannot exist here)."""
    return bed_s3.client()


def split_s3_url(url: str) -> tuple:
    bucket, _sep, key = url[len("s3://") :].partition("/")
    return bucket, key.rstrip("/")


def fake_instance_id(host) -> str:
    """A distinct, valid-looking instance id per container (there is no DMI in a container)."""
    digest = hashlib.sha256(container_name(host).encode()).hexdigest()
    return "i-" + digest[:17]


def run_as_login(host, user: str, command: str):
    """Run ``command`` in a real login session of ``user`` (PAM + login shell), as a workload would."""
    return host.run("su -l %s -c %s" % (user, shlex.quote(command)))
