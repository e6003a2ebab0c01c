"""Helpers shared by the testinfra suites of every molecule scenario."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
