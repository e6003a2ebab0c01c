"""After hand-run dnf upgrade, reinstall and downgrade and the role's pin move to 2.32.28.0: our
hook is in place, the vendor capture it chains to is the new one, the pin moved."""

from __future__ import annotations

import json
import re

from bedtest import HOOK

VENDOR = HOOK + ".distrib"
ACTION = "/etc/dnf/plugins/post-transaction-actions.d/neuron-core-dump.action"


def test_newer_version_is_installed_and_pinned(host):
    assert host.check_output("rpm -q --qf '%{VERSION}' aws-neuronx-tools") == "2.32.28.0"
    locks = host.file("/etc/dnf/plugins/versionlock.list").content_string
    assert re.search(r"^aws-neuronx-tools-0:2\.32\.28\.0\*$", locks, re.M)
    assert "2.30.10.0" not in locks


def test_our_hook_is_in_place_and_the_action_is_installed(host):
    hook = host.file(HOOK)
    assert hook.mode == 0o755
    assert 'NEURON_CORE_DUMP_HOOK_VERSION = "' in hook.content_string
    assert host.file(ACTION).content_string.startswith("aws-neuronx-tools:in:")


def test_vendor_capture_is_the_new_version(host):
    vendor = host.file(VENDOR)
    assert vendor.mode == 0o755
    assert "aws-neuronx-tools 2.32.28.0" in vendor.content_string


def test_self_test_passes(host):
    result = host.run("neuron-core-dump self-test --json")
    assert result.rc == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["ok"] is True


def test_uploader_runs_on_the_os_boto3(host):
    # boto3 comes from the OS repository as an rpm (on this host: the bed's AL2023 stand-in).
    assert host.run("rpm -q python3-boto3").rc == 0
    out = host.check_output("/usr/bin/python3 -c 'import boto3; print(boto3.__version__)'")
    assert out.startswith("1.26.")
