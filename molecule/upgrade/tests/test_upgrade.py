"""Upgrade 2.30.10.0 -> 2.32.28.0 and reinstall after the hook was layered: the pin moved,
our hook is still in place and the vendor capture it chains to is the new one."""

from __future__ import annotations

import json
import re

from bedtest import HOOK

VENDOR = HOOK + ".distrib"


def test_newer_version_is_installed(host):
    assert host.package("aws-neuronx-tools").version.startswith("2.32.28.0")


def test_pin_follows_the_new_version(host):
    pref = host.file("/etc/apt/preferences.d/neuron-tools.pref").content_string
    assert re.search(r"^Pin: version 2\.32\.28\.0\*$", pref, re.M)
    assert "Candidate: 2.32.28.0" in host.check_output("apt-cache policy aws-neuronx-tools")


def test_our_hook_survived_the_upgrade_and_the_reinstall(host):
    hook = host.file(HOOK)
    assert hook.mode == 0o755
    assert 'NEURON_CORE_DUMP_HOOK_VERSION = "' in hook.content_string
    assert "local diversion of %s to %s" % (HOOK, VENDOR) in host.check_output("dpkg-divert --list")


def test_vendor_capture_is_the_new_version(host):
    vendor = host.file(VENDOR)
    assert vendor.mode == 0o755
    assert "aws-neuronx-tools 2.32.28.0" in vendor.content_string


def test_self_test_passes(host):
    result = host.run("neuron-core-dump self-test --json")
    assert result.rc == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["ok"] is True
