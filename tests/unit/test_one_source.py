"""One source for the version (galaxy.yml) and the host paths (the neuron_dump role's vars/main.yml).

The role fills both into what it installs (templates/: the entry scripts and the package's
layout.py). Everything else that names them is a copy: the modules' fixed paths (another
deployable), module and role documentation, the systemd path unit, tests and docs. This test
fails when any copy disagrees, so changing a path or the version is one edit plus what it names.
"""

from __future__ import annotations

import os
import re
import subprocess

import scratch_install
import yaml
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import container_area, contract, paths

REPO = scratch_install.REPO_ROOT
ROLE = scratch_install.role_values()
HOST_PATH = re.compile(r"/(?:var|etc|usr|tmp)/[\w.%*/-]*neuron-core-dump[\w.%*/-]*|/opt/aws/neuron/[\w.%*/-]*")
# Paths of this collection that are not the host program's layout (each named once, by its owner).
OTHERS = (
    "/etc/profile.d/neuron-core-dump.sh",  # module_utils/paths.py: core_dump's targets
    "/etc/systemd/system",
    "/etc/systemd/system.conf.d/50-neuron-core-dump.conf",
    "/etc/containers/containers.conf.d/50-neuron-core-dump.conf",
    "/etc/tmpfiles.d/neuron-core-dump.conf",  # roles/neuron_dump/vars/main.yml
    "/etc/dnf/plugins/post-transaction-actions.d/neuron-core-dump.action",
    "/var/tmp/neuron-core-dump-pull",  # playbooks/pull_job.yml
    "/opt/aws/neuron/lib",  # the runtime's own files (docs/runtime-contract.md)
    "/tmp/neuron-core-dumps",  # test data: a root beside the runtime's
)
LAYOUT = [ROLE[k] for k in ("state_dir", "spool_dir", "config_dir", "lib_dir", "cli", "hook", "vendor_dump_root")]
LAYOUT.append(os.path.dirname(ROLE["hook"]))  # neuron-ls and the other vendor tools
SKIP = ("changelogs/", "CHANGELOG.rst", "tests/unit/containers/cdi_schema/", "tests/unit/test_one_source.py")


def tracked_files():
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [name for name in out.split() if not name.startswith(SKIP) and os.path.isfile(os.path.join(REPO, name))]


def _under(path, roots):
    path = path.rstrip("/.")
    return any(path == root or path.startswith(root + "/") for root in roots)


def test_every_host_path_in_the_tree_is_the_roles():
    strays = []
    for name in tracked_files():
        with open(os.path.join(REPO, name), errors="replace") as handle:
            text = handle.read()
        for found in HOST_PATH.findall(text):
            if not _under(found, LAYOUT) and not _under(found, OTHERS):
                strays.append("%s: %s" % (name, found))
    assert not strays, "host paths that are not the role's (vars/main.yml):\n" + "\n".join(strays)


def test_the_modules_paths_are_the_roles():
    assert ROLE["hook"] == paths.HOOK and ROLE["vendor"] == paths.VENDOR_HOOK
    assert ROLE["cli"] == paths.HOST_PROGRAM and ROLE["config_file"] == paths.UPLOADER_CONFIG
    assert os.path.dirname(paths.HOOK_STATE) == ROLE["state_dir"]
    assert ROLE["containers_area"] == paths.CONTAINER_DUMP_AREA
    assert os.path.dirname(contract.DEFAULT_LOCAL_DIR) == ROLE["dump_root"] == container_area.CONTAINER_MOUNT


def test_the_documented_defaults_are_the_roles():
    with open(os.path.join(REPO, "roles", "dump_env", "defaults", "main.yml")) as handle:
        dump_env = yaml.safe_load(handle)
    assert dump_env["dump_env_local_dir"] == contract.DEFAULT_LOCAL_DIR
    assert dump_env["dump_env_container_dump_dir"] == ROLE["containers_area"]
    with open(os.path.join(REPO, "roles", "neuron_dump", "files", "systemd", "neuron-core-dump-upload.path")) as handle:
        assert "PathChanged=%s/incoming\n" % ROLE["spool_dir"] in handle.read()


def test_the_version_is_galaxys_everywhere():
    version = ROLE["version"]
    assert 'VERSION = "%s"' % version in scratch_install.render("layout.py.j2")
    for script in ("bin/neuron-dump.j2", "bin/neuron-core-dump.j2"):
        assert 'NEURON_CORE_DUMP_HOOK_VERSION = "%s"' % version in scratch_install.render(script)
    copies = re.compile(r"core_dump-(\d+\.\d+\.\d+)\.tar\.gz|-ee:(\d+\.\d+\.\d+)|neuron-core-dump-(\d+\.\d+\.\d+)/")
    for name in tracked_files():
        with open(os.path.join(REPO, name), errors="replace") as handle:
            for match in copies.finditer(handle.read()):
                assert version in match.groups(), "%s names version %s, galaxy.yml %s" % (name, match.group(0), version)
