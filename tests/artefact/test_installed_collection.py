"""The artefact users install: build the tarball, install it with the dependencies galaxy.yml
declares (and only those) into an empty collections path, and use it with ansible-core alone.

Galaxy is unreachable here, so each declared dependency is installed from the copy bundled
in the ``ansible`` package of the main venv (a ``type: dir`` source, ``--offline``). The
playbooks then run from a venv holding only the pinned ansible-core, so a collection the
content uses but galaxy.yml does not declare is simply not there, and the test fails.
"""

import importlib.util
import json
import os
import re
import subprocess

import pytest
import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FQCN_TASK = re.compile(r"^\s*-?\s*([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*):\s*$", re.M)


def galaxy():
    with open(os.path.join(REPO_ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def bundled_collection(fqcn):
    """Directory of ``fqcn`` in the ``ansible`` package installed in the main venv."""
    spec = importlib.util.find_spec("ansible_collections")
    for base in spec.submodule_search_locations:
        path = os.path.join(base, *fqcn.split("."))
        if os.path.isfile(os.path.join(path, "MANIFEST.json")):
            return path
    pytest.fail("%s is declared in galaxy.yml but not bundled in the ansible package" % fqcn)


def bundled_version(path):
    with open(os.path.join(path, "MANIFEST.json"), encoding="utf-8") as handle:
        return json.load(handle)["collection_info"]["version"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory, collection_tarball, core_only_env):
    """Collections path holding the installed tarball and its declared dependencies."""
    work = tmp_path_factory.mktemp("installed")
    sources = [{"name": str(collection_tarball), "type": "file"}]
    sources += [{"name": bundled_collection(name), "type": "dir"} for name in galaxy()["dependencies"]]
    requirements = work / "requirements.yml"
    requirements.write_text(yaml.safe_dump({"collections": sources}))
    path = work / "collections"
    env = core_only_env(path)
    run(["ansible-galaxy", "collection", "install", "--offline", "-r", str(requirements), "-p", str(path)], env)
    return path, env


def run(argv, env, **kwargs):
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, **kwargs)
    assert result.returncode == 0, "%s failed:\n%s\n%s" % (argv, result.stdout, result.stderr)
    return result.stdout


def test_the_venv_has_ansible_core_alone(installed):
    env = installed[1]
    out = run(["python", "-c", "import importlib.util as u; print(u.find_spec('ansible_collections'))"], env)
    assert out.strip() == "None", "the core-only venv must not hold the ansible package"


def test_declared_dependencies_are_satisfied_by_the_bundled_copies():
    from ansible.galaxy.dependency_resolution.versioning import meets_requirements

    for name, spec in galaxy()["dependencies"].items():
        version = bundled_version(bundled_collection(name))
        assert meets_requirements(version, spec), "%s %s does not satisfy %s" % (name, version, spec)


def test_every_module_the_installed_content_calls_resolves(installed):
    path, env = installed
    root = path / "ansible_collections" / "neuron_ops" / "core_dump"
    used = set()
    for sub in ("roles", "playbooks"):
        for dirpath, _dirs, files in os.walk(root / sub):
            for name in files:
                if name.endswith((".yml", ".yaml")) and "/meta" not in dirpath:
                    with open(os.path.join(dirpath, name), encoding="utf-8") as handle:
                        used.update(FQCN_TASK.findall(handle.read()))
    used.discard("ansible.builtin.import_playbook")
    assert "community.general.dpkg_divert" in used, "the scan no longer sees the roles' tasks"
    found = json.loads(run(["ansible-doc", "-t", "module", "--json", *sorted(used)], env))
    missing = sorted(used - set(found))
    assert not missing, "the installed content calls modules no installed collection provides: %s" % missing


@pytest.mark.parametrize("playbook", ["site", "enable", "disable", "verify", "fetch_job", "pull_job"])
def test_playbooks_parse_from_the_installed_copy(installed, playbook):
    env = installed[1]
    run(["ansible-playbook", "--syntax-check", "-i", "localhost,", "neuron_ops.core_dump.%s" % playbook], env)


def test_verify_runs_from_the_installed_copy(installed, tmp_path):
    """core_dump_info (read-only), its module_utils and the fleet report filters, on this machine."""
    env = installed[1]
    run(
        [
            "ansible-playbook",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "ansible_python_interpreter=/usr/bin/python3",
            "-e",
            "neuron_core_dump_report_dir=%s" % tmp_path,
            "neuron_ops.core_dump.verify",
        ],
        env,
    )
    report = json.loads((tmp_path / "fleet-report.json").read_text())
    assert report["host_count"] == 1


def test_the_tarball_carries_no_test_or_bed_files(collection_tarball):
    names = subprocess.run(["tar", "-tzf", str(collection_tarball)], capture_output=True, text=True, check=True)
    bad = [n for n in names.stdout.split() if re.match(r"(tests|molecule|\.bed|bench|demo)/", n)]
    assert not bad


def test_the_tarball_ships_the_fleet_inventory(collection_tarball):
    """Deliberately included: users start from these files (docs/fleet.md)."""
    names = subprocess.run(["tar", "-tzf", str(collection_tarball)], capture_output=True, text=True, check=True)
    shipped = set(names.stdout.split())
    for name in ("inventory/aws_ec2.yml", "inventory/ssm/aws_ec2.yml", "inventory/ssm/group_vars/aws_ec2.yml"):
        assert name in shipped, name
