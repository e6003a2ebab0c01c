"""Every refusal left the host as it was: no Neuron source, no key, no package."""


def test_package_not_installed(host):
    assert not host.package("aws-neuronx-tools").is_installed


def test_no_source_and_no_key_left_behind(host):
    assert not host.file("/etc/apt/sources.list.d/neuron.sources").exists
    assert not host.file("/etc/apt/keyrings/neuron.asc").exists
    assert host.run("ls /etc/apt/sources.list.d/ | grep -c neuron").stdout.strip() == "0"


def test_apt_still_works(host):
    assert host.run("apt-get update").rc == 0
