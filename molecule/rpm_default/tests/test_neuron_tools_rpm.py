"""neuron_tools on the AL2023 identity: the signed yum repository (packages and metadata), the key
in /etc/pki/rpm-gpg and in the rpm database, the versionlock pin that holds against a later
`dnf upgrade`, the vendor layout, and the fixture vendor hook under the runtime stand-in."""

from __future__ import annotations

import re

from bedtest import HOOK, hook_calls

PINNED = "2.30.10.0"
NEWER = "2.32.28.0"
KEY = "/etc/pki/rpm-gpg/RPM-GPG-KEY-AMAZON-AWS-NEURON"


def test_host_is_seen_as_amazon_linux_2023_with_dnf(host):
    assert host.system_info.distribution == "amzn"
    assert host.system_info.release == "2023"
    assert host.exists("dnf") and host.exists("rpm")


def test_package_is_installed_at_the_pinned_version_from_the_neuron_repo(host):
    assert host.check_output("rpm -q --qf '%{VERSION}' aws-neuronx-tools") == PINNED
    info = host.check_output("rpm -qi aws-neuronx-tools")
    assert re.search(r"^Signature\s*:.*Key ID [0-9a-f]+$", info, re.M), "the package must carry a signature: " + info
    assert "neuron" in host.check_output("dnf -q list --installed aws-neuronx-tools")


def test_versionlock_holds_although_a_newer_version_is_available(host):
    available = host.check_output("dnf -q --disableplugin=versionlock list --showduplicates aws-neuronx-tools")
    assert NEWER in available, "the repository must offer the newer version for this test to mean anything"
    locks = host.file("/etc/dnf/plugins/versionlock.list").content_string
    assert re.search(r"^aws-neuronx-tools-0:2\.30\.10\.0\*$", locks, re.M)
    upgrade = host.run("dnf -y upgrade")
    assert upgrade.rc == 0, upgrade.stderr
    assert host.check_output("rpm -q --qf '%{VERSION}' aws-neuronx-tools") == PINNED


def test_signing_key_is_in_pki_and_in_the_rpm_database(host):
    key = host.file(KEY)
    assert key.is_file and key.user == "root" and key.mode == 0o644
    assert "-----BEGIN PGP PUBLIC KEY BLOCK-----" in key.content_string
    summaries = host.check_output("rpm -q gpg-pubkey --qf '%{SUMMARY}\\n'")
    assert "neuron_ops core_dump test bed" in summaries


def test_repository_checks_package_and_metadata_signatures(host):
    repo = host.file("/etc/yum.repos.d/neuron.repo").content_string
    assert re.search(r"^baseurl = http://127\.0\.0\.1:\d+/neuron/yum$", repo, re.M)
    assert re.search(r"^gpgcheck = 1$", repo, re.M)
    assert re.search(r"^repo_gpgcheck = 1$", repo, re.M)
    assert re.search(r"^gpgkey = file://%s$" % re.escape(KEY), repo, re.M)


def test_vendor_tools_are_laid_out_like_the_package(host):
    hook = host.file(HOOK)
    assert hook.is_file
    assert hook.mode == 0o755
    assert PINNED in host.check_output("/opt/aws/neuron/bin/neuron-ls")
    assert host.run("rpm -V aws-neuronx-tools").rc == 0, "the vendor files must be as the package installed them"


def test_stand_in_with_no_settings_dumps_to_the_vendor_default(host, stand_in):
    host.run_expect([0], "rm -rf /tmp/neuron-core-dump")
    report = stand_in({})
    assert report["gate"]["enabled"]
    calls = hook_calls(report)
    assert [call["kind"] for call in calls] == ["core", "runtime-generated"]
    dump_dir = calls[0]["local_output_dir"]
    assert host.run("grep -aq 'aws-neuronx-tools %s' %s/*-nd0-nc0-*" % (PINNED, dump_dir)).rc == 0
