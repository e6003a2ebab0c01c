"""neuron_tools on a fresh Debian host: signed repository, pinned version, vendor layout,
and the fixture vendor hook under the runtime stand-in."""

from __future__ import annotations

import re

from bedtest import HOOK, hook_calls

PINNED = "2.30.10.0"
NEWER = "2.32.28.0"


def test_package_is_installed_at_the_pinned_version(host):
    package = host.package("aws-neuronx-tools")
    assert package.is_installed
    assert package.version.startswith(PINNED)


def test_pin_holds_although_a_newer_version_is_available(host):
    policy = host.check_output("apt-cache policy aws-neuronx-tools")
    assert NEWER in policy, "the repository must offer the newer version for this test to mean anything"
    assert re.search(r"Candidate: %s" % re.escape(PINNED), policy)
    upgrade = host.run("apt-get -s upgrade")
    assert upgrade.rc == 0
    assert "aws-neuronx-tools" not in upgrade.stdout


def test_signing_key_lives_in_etc_apt_keyrings(host):
    key = host.file("/etc/apt/keyrings/neuron.asc")
    assert key.is_file
    assert key.user == "root"
    assert key.mode == 0o644
    assert "-----BEGIN PGP PUBLIC KEY BLOCK-----" in key.content_string


def test_source_is_deb822_signed_by_the_keyring(host):
    source = host.file("/etc/apt/sources.list.d/neuron.sources").content_string
    codename = host.system_info.codename
    assert re.search(r"^Types: deb$", source, re.M)
    assert re.search(r"^URIs: http://127\.0\.0\.1:\d+/neuron/apt$", source, re.M)
    assert re.search(r"^Suites: %s$" % codename, source, re.M)
    assert re.search(r"^Signed-By: /etc/apt/keyrings/neuron\.asc$", source, re.M)


def test_legacy_apt_key_leftovers_are_gone(host):
    assert not host.file("/etc/apt/sources.list.d/neuron.list").exists
    assert not host.file("/etc/apt/trusted.gpg.d/neuron.gpg").exists


def test_vendor_tools_are_laid_out_like_the_package(host):
    hook = host.file(HOOK)
    assert hook.is_file
    assert hook.mode == 0o755
    assert PINNED in host.check_output("/opt/aws/neuron/bin/neuron-ls")


def test_stand_in_with_no_settings_dumps_to_the_vendor_default(host, stand_in):
    host.run_expect([0], "rm -rf /tmp/neuron-core-dump")
    report = stand_in({})
    assert report["gate"]["enabled"]
    calls = hook_calls(report)
    assert [call["kind"] for call in calls] == ["core", "runtime-generated"]
    dump_dir = calls[0]["local_output_dir"]
    assert re.fullmatch(r"/tmp/neuron-core-dump/dt-\d{8}-\d{6}-cid-0{16}", dump_dir)
    files = host.check_output("ls %s" % dump_dir).split()
    assert any(re.fullmatch(r"i-[0-9a-f]+-nd0-nc0-pid-\d+-tid-\d+-lid-0", name) for name in files), files
    assert any(re.fullmatch(r"i-[0-9a-f]+-nrt-pid-\d+\.log", name) for name in files), files
    # The vendor capture names its own version in the (binary) per-core file.
    assert host.run("grep -aq 'aws-neuronx-tools %s' %s/*-nd0-nc0-*" % (PINNED, dump_dir)).rc == 0


def test_stand_in_never_calls_the_hook_when_both_settings_are_empty(host, stand_in):
    report = stand_in({"NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY": "", "NEURON_RT_S3_CORE_DUMP_PREFIX": ""})
    assert not report["gate"]["enabled"]
    assert hook_calls(report) == []


def test_stand_in_never_calls_a_hook_that_is_not_executable(host, stand_in):
    host.run_expect([0], "chmod a-x %s" % HOOK)
    try:
        report = stand_in({})
    finally:
        host.run_expect([0], "chmod 0755 %s" % HOOK)
    assert not report["gate"]["enabled"]
    assert hook_calls(report) == []
