"""execution-environment.yml (ansible-builder v3) for AWX / Automation Platform.

``ansible-builder create`` writes the build context for real (pinned ansible-builder in a
cached venv of its own). Building the image is not done here: it needs a container
registry (the base image), Galaxy and the AWS download of session-manager-plugin, none
reachable from this machine. What the image's galaxy and builder stages would do is
replayed offline instead: the generated requirements.yml installs the tarball with its
declared dependencies (the bundled copies standing in for Galaxy), and ansible-builder's
own introspect script collects the Python and system requirements from the result.
"""

import os
import shutil
import subprocess

import pytest
import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def definition():
    return load(os.path.join(REPO_ROOT, "execution-environment.yml"))


@pytest.fixture(scope="module")
def context(tmp_path_factory, collection_tarball, definition, builder_venv):
    """The build context ansible-builder creates, next to a copy of the definition."""
    builder = builder_venv
    work = tmp_path_factory.mktemp("ee")
    shutil.copy2(os.path.join(REPO_ROOT, "execution-environment.yml"), work)
    for entry in definition["additional_build_files"]:
        (work / os.path.dirname(entry["src"])).mkdir(parents=True, exist_ok=True)
        shutil.copy2(collection_tarball, work / entry["src"])
    result = subprocess.run(
        [os.path.join(builder, "bin", "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", "context"],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return work / "context", builder


def test_definition_follows_the_collection(definition, collection_tarball, pinned):
    assert definition["version"] == 3
    assert definition["dependencies"]["ansible_core"]["package_pip"] == pinned("ansible-core")
    (collection,) = definition["dependencies"]["galaxy"]["collections"]
    assert os.path.basename(collection["name"]) == collection_tarball.name, "the EE installs another version"
    assert [e["src"] for e in definition["additional_build_files"]] == ["build/" + collection_tarball.name]


def test_context_has_the_containerfile_and_the_collection(context, collection_tarball):
    path = context[0]
    containerfile = (path / "Containerfile").read_text()
    assert "ansible-core==2.19.14" in containerfile
    assert "session-manager-plugin" in containerfile
    requirements = load(path / "_build" / "requirements.yml")
    (collection,) = requirements["collections"]
    assert (path / "_build" / collection["name"]).is_file()


def test_galaxy_and_builder_stages_replayed_offline(context, core_only_env, bundled_collections, tmp_path):
    path, builder = context
    build = path / "_build"
    collections = tmp_path / "collections"
    env = core_only_env(collections)
    # Galaxy stand-in: the declared dependencies, already present where the stage installs.
    with open(os.path.join(REPO_ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        declared = yaml.safe_load(handle)["dependencies"]
    sources = [os.path.join(bundled_collections, "ansible_collections", *name.split(".")) for name in declared]
    install = ["ansible-galaxy", "collection", "install", "--offline", "-p", str(collections)]
    for argv in (install + sources, [*install, "-r", "requirements.yml"]):
        result = subprocess.run(argv, cwd=build, env=env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    assert (collections / "ansible_collections" / "neuron_ops" / "core_dump" / "MANIFEST.json").is_file()
    result = subprocess.run(
        [
            os.path.join(builder, "bin", "python"),
            "scripts/introspect.py",
            "introspect",
            str(collections),
            "--user-pip=requirements.txt",
            "--user-bindep=bindep.txt",
        ],
        cwd=build,
        capture_output=True,
        text=True,
        check=True,
    )
    found = yaml.safe_load(result.stdout)
    assert any(line.startswith("boto3") and "amazon.aws" in line for line in found["python"]), found
    assert any(line.startswith("openssh-clients") for line in found["system"]), found
