"""containerd_cdi through the real module on the fake host: check mode, diff, apply, second run, refusals."""

from __future__ import annotations

import os
import stat

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import container_runtimes, containerd_config
from ansible_collections.neuron_ops.core_dump.plugins.modules import containerd_cdi

CONFIG = "/etc/containerd/config.toml"
CRI = containerd_config.CRI_V2
EKS_LIKE = (
    'version = 2\nroot = "/var/lib/containerd"\n\n[plugins."%s".containerd]\ndefault_runtime_name = "runc"\n\n'
    '[plugins."%s"]\nsandbox_image = "registry.k8s.io/pause:3.9"\nenable_cdi = false\n\n'
    '[plugins."%s".cni]\nbin_dir = "/opt/cni/bin"\n'
) % (CRI, CRI, CRI)


@pytest.fixture
def box(host, commands):
    commands.bins["containerd"] = "/usr/bin/containerd"
    commands.respond(["containerd", "--version"], out="containerd github.com/containerd/containerd v1.7.27 05044ec\n")
    os.makedirs(host.path("/run/systemd/system"), exist_ok=True)
    host.commands = commands
    return host


def test_check_mode_predicts_exactly_then_apply_then_nothing(box, run_module):
    box.write(CONFIG, EKS_LIKE, mode=0o600)
    result, failed = run_module(containerd_cdi, {}, check_mode=True, diff=True)
    assert not failed, result
    expected = EKS_LIKE.replace("enable_cdi = false", "enable_cdi = true")
    assert result["changed"] and result["diff"]["before"] == EKS_LIKE and result["diff"]["after"] == expected
    assert result["cdi"] is True and result["service_active"] is True
    assert box.read(CONFIG).decode() == EKS_LIKE  # check mode wrote nothing

    result, failed = run_module(containerd_cdi, {}, diff=True)
    assert not failed and result["changed"]
    assert box.read(CONFIG).decode() == result["diff"]["after"] == expected
    assert stat.S_IMODE(os.stat(box.path(CONFIG)).st_mode) == 0o600  # mode kept
    assert container_runtimes.containerd_cdi((1, 7, 27), expected)[0] is True

    again, failed = run_module(containerd_cdi, {}, diff=True)
    assert not failed and not again["changed"] and "diff" not in again and again["cdi"] is True
    assert "systemctl is-active --quiet containerd.service" in box.commands.calls


def test_no_file_on_1_7_writes_the_minimal_file(box, run_module):
    result, failed = run_module(containerd_cdi, {})
    assert not failed and result["changed"]
    assert box.read(CONFIG).decode() == containerd_config.NEW_FILE
    assert stat.S_IMODE(os.stat(box.path(CONFIG)).st_mode) == 0o644


def test_containerd_2_without_file_changes_nothing(box, run_module):
    box.commands.respond(["containerd", "--version"], out="containerd containerd.io v2.1.3 x\n")
    result, failed = run_module(containerd_cdi, {})
    assert not failed and not result["changed"] and result["cdi"] is True
    assert box.read(CONFIG) is None


def test_no_containerd_skips(host, commands, run_module):
    result, failed = run_module(containerd_cdi, {})
    assert not failed and not result["changed"] and result["skipped_reason"]
    assert host.read(CONFIG) is None


def test_refused_file_is_left_alone(box, run_module):
    text = 'version = 2\nplugins."%s".enable_cdi = false\n' % CRI
    box.write(CONFIG, text)
    result, failed = run_module(containerd_cdi, {}, check_mode=True)
    assert failed and "dotted key" in result["msg"] and "not changed" in result["msg"]
    result, failed = run_module(containerd_cdi, {})
    assert failed and box.read(CONFIG).decode() == text


def test_file_of_another_owner_is_refused(box, run_module):
    box.write(CONFIG, EKS_LIKE)
    os.chown(box.path(CONFIG), 65534, 65534)
    result, failed = run_module(containerd_cdi, {})
    assert failed and "not root" in result["msg"] and box.read(CONFIG).decode() == EKS_LIKE


def test_symlinked_file_is_refused(box, run_module):
    real = box.write("/srv/containerd.toml", EKS_LIKE)
    os.makedirs(box.path("/etc/containerd"))
    os.symlink(real, box.path(CONFIG))
    result, failed = run_module(containerd_cdi, {})
    assert failed and "symlink" in result["msg"] and box.read("/srv/containerd.toml").decode() == EKS_LIKE


def test_bad_option_is_refused(box, run_module):
    box.write(CONFIG, EKS_LIKE)
    result, failed = run_module(containerd_cdi, {"cdi_spec_dir": "/tmp/cdi"})
    assert failed and "cdi_spec_dir" in result["msg"] and box.read(CONFIG).decode() == EKS_LIKE
