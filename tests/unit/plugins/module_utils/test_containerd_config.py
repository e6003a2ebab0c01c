"""containerd_config: the line-oriented config.toml reader and the enable_cdi edit.

The EKS fixtures are verbatim copies of awslabs/amazon-eks-ami
``nodeadm/internal/containerd/config.template.toml`` (containerd 1.7, config version 2)
and ``config2.template.toml`` (containerd 2.x, version 3), repository HEAD
81fec2e895854f599974fe4d3d72f61c0a9aaffa (files last changed in 69b11404, "add SOCI
snapshotter support"). ``render`` fills in the Go template the way nodeadm does
(``generateContainerdConfig``: ``EnableCDI`` is true only for kubelet >= 1.32).
Every expected output is also checked with tomllib (Python 3.11 in the venv) to be
valid TOML with the other settings unchanged.
"""

from __future__ import annotations

import os
import re

import pytest
import tomllib
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import container_runtimes as cr
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import containerd_config as cc

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
V17 = (1, 7, 27)
V20 = (2, 1, 3)
CRI = "io.containerd.grpc.v1.cri"


def render(name, enable_cdi=False, soci=False):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        template = handle.read()
    block = r"\{\{-? ?if \.UseSOCISnapshotter\}\}(.*?)\{\{- end\}\}"
    template = re.sub(block, (lambda m: m.group(1)) if soci else "", template, flags=re.S)
    values = {
        "RuntimeName": "runc",
        "RuntimeBinaryName": "/usr/sbin/runc",
        "SandboxImage": "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/pause:3.5",
        "EnableCDI": "true" if enable_cdi else "false",
    }
    text = re.sub(r"\{\{\.(\w+)\}\}", lambda m: values[m.group(1)], template)
    assert "{{" not in text
    return text


def toml(text):
    return tomllib.loads(text)


def without_cdi(data, plugin=CRI):
    data["plugins"][plugin].pop("enable_cdi", None)
    return data


def test_eks_al2023_config_gets_enable_cdi_flipped_and_nothing_else():
    before = render("eks-nodeadm-config.template.toml", enable_cdi=False, soci=True)
    assert cr.containerd_cdi(V17, before)[0] is False
    after, why = cc.plan(before, V17, "/etc/cdi")
    assert "turned to true" in why
    assert after == before.replace("enable_cdi = false", "enable_cdi = true")
    assert toml(after)["plugins"][CRI]["enable_cdi"] is True
    assert without_cdi(toml(after)) == without_cdi(toml(before))
    assert cr.containerd_cdi(V17, after) == (True, "plugins.%s enable_cdi = true in /etc/containerd/config.toml" % CRI)
    assert cc.plan(after, V17, "/etc/cdi")[0] is None  # idempotent


def test_eks_config_without_the_key_gets_it_right_after_the_header():
    # The CRI header comes after one of its subtables in nodeadm's template.
    before = render("eks-nodeadm-config.template.toml").replace("enable_cdi = false\n", "")
    after, why = cc.plan(before, V17, "/etc/cdi")
    assert "inserted after" in why
    lines = after.split("\n")
    assert lines[lines.index('[plugins."%s"]' % CRI) + 1] == "enable_cdi = true"  # the table's own indentation
    assert without_cdi(toml(after)) == toml(before)
    assert cr.containerd_cdi(V17, after)[0] is True
    assert cc.plan(after, V17, "/etc/cdi")[0] is None


def test_config_without_the_cri_table_gets_it_appended():
    before = 'version = 2\nroot = "/var/lib/containerd"\n\n[grpc]\n  address = "/run/containerd/containerd.sock"\n'
    after, _why = cc.plan(before, V17, "/etc/cdi")
    assert after.startswith(before)
    data = toml(after)
    assert data["plugins"][CRI] == {"enable_cdi": True} and data["grpc"] == toml(before)["grpc"]
    assert cr.containerd_cdi(V17, after)[0] is True
    assert cc.plan(after, V17, "/etc/cdi")[0] is None


def test_no_file():
    after, _why = cc.plan(None, V17, "/etc/cdi")
    assert after == cc.NEW_FILE
    assert toml(after) == {"version": 2, "plugins": {CRI: {"enable_cdi": True}}}
    assert cr.containerd_cdi(V17, after)[0] is True
    assert cc.plan(None, V20, "/etc/cdi")[0] is None  # 2.x: on by default, no file needed


def test_comments_only_file_keeps_its_comments():
    before = "# managed elsewhere once\n"
    after, _why = cc.plan(before, V17, "/etc/cdi")
    assert after.startswith(before) and toml(after)["plugins"][CRI]["enable_cdi"] is True


def test_version_3_is_left_alone_unless_cdi_is_turned_off():
    on = render("eks-nodeadm-config2.template.toml", enable_cdi=True)
    assert cc.plan(on, V20, "/etc/cdi")[0] is None
    unset = on.replace("enable_cdi = true\n", "")
    assert cc.plan(unset, V20, "/etc/cdi")[0] is None
    assert cr.containerd_cdi(V20, unset)[0] is True
    off = render("eks-nodeadm-config2.template.toml", enable_cdi=False)
    assert cr.containerd_cdi(V20, off)[0] is False
    after, _why = cc.plan(off, V20, "/etc/cdi")
    assert after == on and cr.containerd_cdi(V20, after)[0] is True


def test_containerd_2_reads_a_version_2_file_through_the_migration():
    off = 'version = 2\n[plugins."%s"]\n  enable_cdi = false\n' % CRI
    assert cr.containerd_cdi(V20, off)[0] is False
    after, _why = cc.plan(off, V20, "/etc/cdi")
    assert "enable_cdi = true" in after and cr.containerd_cdi(V20, after)[0] is True
    assert cc.plan('version = 2\n[plugins."%s"]\n  sandbox_image = "x"\n' % CRI, V20, "/etc/cdi")[0] is None


def test_a_stray_key_outside_the_cri_table_does_not_count():
    # containerd ignores a top-level enable_cdi (unknown key); so does the reader.
    assert cr.containerd_cdi(V20, "version = 3\nenable_cdi = false\n")[0] is True
    assert cr.containerd_cdi(V17, "version = 2\nenable_cdi = true\n")[0] is False


def test_cdi_spec_dirs_missing_our_directory_gets_it_added():
    before = 'version = 2\n[plugins."%s"]\n  cdi_spec_dirs = ["/opt/cdi"]  # site specs\n' % CRI
    after, why = cc.plan(before, V17, "/etc/cdi")
    assert '  cdi_spec_dirs = ["/opt/cdi", "/etc/cdi"]  # site specs' in after and "/etc/cdi added" in why
    assert toml(after)["plugins"][CRI] == {"enable_cdi": True, "cdi_spec_dirs": ["/opt/cdi", "/etc/cdi"]}
    listed = 'version = 2\n[plugins."%s"]\n  enable_cdi = true\n  cdi_spec_dirs = ["/run/cdi"]\n' % CRI
    assert cc.plan(listed, V17, "/var/run/cdi")[0] is None  # /var/run is /run


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('version = 2\nplugins."%s".enable_cdi = false\n' % CRI, "dotted key outside"),
        ('version = 2\n[plugins]\n  "%s".enable_cdi = true\n' % CRI, "dotted key outside"),
        ('version = 2\n[plugins."%s"]\n  a = 1\n[plugins."%s"]\n  b = 2\n' % (CRI, CRI), "defined twice"),
        ('version = 2\n[plugins]\n  "%s" = { enable_cdi = false }\n' % CRI, "inline value"),
        ('version = 2\nplugins = { "%s" = { sandbox_image = "x" } }\n' % CRI, "inline value"),
        ("version = 1\n[plugins.cri]\n  enable_cdi = true\n", "version 1"),
        ('[plugins.cri]\n  sandbox_image = "x"\n', "no 'version' line"),
        ("version = 4\n", "newer"),
        ('version = 2\n[plugins."%s"]\n  enable_cdi = maybe\n' % CRI, "not true or false"),
        ('version = 2\n[plugins."%s"]\n  enable_cdi = true\n  enable_cdi = false\n' % CRI, "set 2 times"),
        ('version = 2\n[plugins."%s"\n  enable_cdi = true\n' % CRI, "cannot be read"),
        ('version = 2\n[plugins."%s"]\n  sandbox_image = "x\n' % CRI, "unterminated string"),
        ('version = 2\n[plugins."%s"]\n  x = 1 y\n' % CRI, "unexpected text"),
        ('version = 2\n[plugins."%s"]\n  cdi_spec_dirs = [\n    "/opt/cdi",\n  ]\n' % CRI, "spans several lines"),
        ('version = 2\n[plugins."%s"]\n  cdi_spec_dirs = "/etc/cdi"\n' % CRI, "not an array of strings"),
        ("version = 2\r\n", "CR line endings"),
        ('version = 3\n[plugins."io.containerd.cri.v1.runtime"]\n  enable_cdi = false\n', "version 3 file on"),
    ],
)
def test_refusals(text, message):
    with pytest.raises(cc.Refused, match=re.escape(message)):
        cc.plan(text, V17, "/etc/cdi")


def test_old_or_unknown_containerd_is_refused():
    with pytest.raises(cc.Refused, match="no CDI support"):
        cc.plan(None, (1, 6, 33), "/etc/cdi")
    with pytest.raises(cc.Refused, match="version is unknown"):
        cc.plan(None, None, "/etc/cdi")


def test_parser_reads_what_containerd_default_configs_hold():
    text = (
        'version = 2\n# comment\n[plugins]\n  [plugins."%s"]\n    device_ownership_from_security_context = false\n'
        '    tolerate_missing_hugetlb_controller = true\n    [plugins."%s".containerd.runtimes.runc.options]\n'
        '      BinaryName = ""\n      Root = \'\'\n  [plugins."io.containerd.gc.v1.scheduler"]\n'
        '    deletion_threshold = 0\n    pause_threshold = 0.02\n    schedule_delay = "0s"\n'
        '[timeouts]\n  "io.containerd.timeout.shim.cleanup" = "5s"\n[stream_processors]\n'
        '  [stream_processors."io.containerd.ocicrypt.decoder.v1.tar"]\n    accepts = ["a", "b"]\n'
        '    args = ["--decryption-keys-path", "/etc/containerd/ocicrypt/keys"]\n'
        '    env = ["OCICRYPT_KEYPROVIDER_CONFIG=/etc/containerd/ocicrypt/ocicrypt_keyprovider.conf"]\n'
        "    multi = '''\nline\n'''\n    when = 1979-05-27T07:32:00Z\n"
    ) % (CRI, CRI)
    after, _why = cc.plan(text, V17, "/etc/cdi")
    lines = after.split("\n")
    assert lines[lines.index('  [plugins."%s"]' % CRI) + 1] == "    enable_cdi = true"
    assert without_cdi(toml(after)) == toml(text)


def test_read_refuses_links_other_files_and_other_owners(tmp_path):
    real = tmp_path / "config.toml"
    real.write_text("version = 2\n")
    assert cc.read(str(real)) == "version = 2\n"
    assert cc.read(str(tmp_path / "missing.toml")) is None
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    with pytest.raises(cc.Refused, match="symlink"):
        cc.read(str(link))
    with pytest.raises(cc.Refused, match="not a regular file"):
        cc.read(str(tmp_path))
    with pytest.raises(cc.Refused, match="not root"):
        cc.read(str(real), required_uid=os.getuid() + 1)
    (tmp_path / "latin1.toml").write_bytes(b"# caf\xe9\n")
    with pytest.raises(cc.Refused, match="not UTF-8"):
        cc.read(str(tmp_path / "latin1.toml"))
