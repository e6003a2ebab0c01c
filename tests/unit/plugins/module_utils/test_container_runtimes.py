from __future__ import annotations

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import container_runtimes as cr

ID = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("podman version 4.3.1\n", (4, 3, 1)),
        ("Docker version 28.2.1, build 879ac3f\n", (28, 2, 1)),
        ("containerd github.com/containerd/containerd v1.7.27 05044ec0a9a7\n", (1, 7, 27)),
        ("crio version 1.28.1\n", (1, 28, 1)),
        ("Version:        1.30.0\nGitCommit: x\n", (1, 30, 0)),
        ("garbage", None),
    ],
)
def test_versions(text, version):
    assert cr.parse_version(text) == version


def test_containerd_cdi_rules():
    on = '[plugins."io.containerd.grpc.v1.cri"]\n  enable_cdi = true\n'
    assert cr.containerd_cdi((1, 7, 2), on)[0] is True
    assert cr.containerd_cdi((1, 7, 2), "")[0] is False
    assert cr.containerd_cdi((1, 6, 9), on)[0] is False
    assert cr.containerd_cdi((2, 0, 0), "")[0] is True
    off = 'version = 3\n[plugins."io.containerd.cri.v1.runtime"]\n  enable_cdi = false\n'
    assert cr.containerd_cdi((2, 1, 0), off)[0] is False
    assert cr.containerd_cdi((1, 7, 2), "version = 2\n[plugins.x\n")[0] is None  # unreadable: not guessed
    assert cr.containerd_cdi(None, on)[0] is None


def test_docker_cdi_rules():
    assert cr.docker_cdi((28, 2, 0), None)[0] is True
    assert cr.docker_cdi((27, 5, 1), None)[0] is False
    assert cr.docker_cdi((27, 5, 1), '{"features": {"cdi": true}}')[0] is True
    assert cr.docker_cdi((24, 0, 0), '{"features": {"cdi": true}}')[0] is False
    assert cr.docker_cdi((28, 3, 0), '{"features": {"cdi": false}}')[0] is False
    assert cr.docker_cdi((28, 3, 0), "{not json")[0] is None


def test_podman_and_crio_rules():
    assert cr.podman_cdi((4, 3, 1))[0] is True and cr.podman_cdi((4, 0, 3))[0] is False
    assert cr.crio_cdi((1, 28, 1))[0] is True and cr.crio_cdi((1, 22, 0))[0] is False


@pytest.mark.parametrize(
    ("cgroup", "expected"),
    [
        ("0::/machine.slice/libpod-%s.scope/container\n" % ID, ("podman", ID)),
        ("0::/system.slice/docker-%s.scope\n" % ID, ("docker", ID)),
        ("0::/kubepods.slice/kubepods-burstable.slice/x/cri-containerd-%s.scope\n" % ID, ("containerd", ID)),
        ("0::/kubepods.slice/y/crio-%s.scope\n" % ID, ("cri-o", ID)),
        ("12:memory:/docker/%s\n" % ID, ("docker", ID)),
        ("0::/kubepods/besteffort/pod1234/%s\n" % ID, ("kubernetes", ID)),
        ("0::/user.slice/user-1000.slice/session-3.scope\n", (None, None)),
        ("0::/libpod-%s.scope/../../etc\n" % ID[:-1], (None, None)),
    ],
)
def test_container_of(cgroup, expected):
    assert cr.container_of(cgroup) == expected


def test_detect_reads_config_files(host, commands):
    commands.bins.update(
        {"podman": "/usr/bin/podman", "containerd": "/usr/bin/containerd", "docker": "/usr/bin/docker"}
    )
    commands.respond(["podman", "--version"], out="podman version 4.3.1\n")
    commands.respond(["containerd", "--version"], out="containerd github.com/containerd/containerd v1.7.2 x\n")
    commands.respond(["docker", "--version"], rc=1, err="boom")
    host.write("/etc/containerd/config.toml", "version = 2\n[plugins.'io.containerd.grpc.v1.cri']\nenable_cdi = true\n")

    class Module:
        def get_bin_path(self, name):
            return commands.bins.get(name)

        def run_command(self, args, **kwargs):
            return commands.run_command(self, args, **kwargs)

    found = {r["name"]: r for r in cr.detect(Module())}
    assert set(found) == {"podman", "containerd", "docker"}
    assert found["podman"]["version"] == "4.3.1" and found["podman"]["cdi"] is True
    assert found["containerd"]["cdi"] is True and "enable_cdi" in found["containerd"]["cdi_reason"]
    assert found["docker"]["version"] is None and found["docker"]["version_error"] == "boom"
