"""Every refusal left the AL2023 host as it was: no Neuron repository, no key in /etc/pki/rpm-gpg
or in the rpm database, no package, and dnf still works."""


def test_package_not_installed(host):
    assert host.run("rpm -q aws-neuronx-tools").rc != 0


def test_no_repository_and_no_key_left_behind(host):
    assert not host.file("/etc/yum.repos.d/neuron.repo").exists
    assert not host.file("/etc/pki/rpm-gpg/RPM-GPG-KEY-AMAZON-AWS-NEURON").exists
    keys = host.run("rpm -q gpg-pubkey --qf '%{SUMMARY}\\n'").stdout
    assert "test bed" not in keys and "unrelated key" not in keys, keys


def test_dnf_still_works(host):
    assert host.run("dnf -q -y makecache").rc == 0
