"""After moving the pin from 2.30.10.0 to 2.32.28.0 the newer tools are installed and pinned."""

from __future__ import annotations

import re


def test_newer_version_is_installed(host):
    assert host.package("aws-neuronx-tools").version.startswith("2.32.28.0")


def test_pin_follows_the_new_version(host):
    pref = host.file("/etc/apt/preferences.d/neuron-tools.pref").content_string
    assert re.search(r"^Pin: version 2\.32\.28\.0\*$", pref, re.M)
    assert "Candidate: 2.32.28.0" in host.check_output("apt-cache policy aws-neuronx-tools")


def test_vendor_hook_is_the_new_one(host):
    assert "2.32.28.0" in host.check_output("/opt/aws/neuron/bin/neuron-ls")
