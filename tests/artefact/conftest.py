"""Fixtures shared by the artefact tests: the built tarball and small cached venvs.

The extra venvs (ansible-core alone; ansible-builder) are cached like the Makefile's main
venv: keyed by the lock's hash and what they hold, under ~/.cache/neuron-core-dump/, built
once under a file lock and pinned by the lock (nothing floats).
"""

import fcntl
import hashlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCK_FILE = os.path.join(REPO_ROOT, "requirements", "requirements.txt")
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "neuron-core-dump")


def lock_pin(name: str) -> str:
    """The exact ``name==version`` line of the lock."""
    with open(LOCK_FILE, encoding="utf-8") as handle:
        for line in handle:
            if line.split("==")[0].strip().lower() == name.lower():
                return line.split("#")[0].split(";")[0].strip()
    raise LookupError("%s is not pinned in %s" % (name, LOCK_FILE))


def cached_venv(label: str, requirements: list) -> str:
    """Path of a venv holding exactly ``requirements`` (pins), creating it when missing."""
    with open(LOCK_FILE, "rb") as handle:
        digest = hashlib.sha256(handle.read() + "\n".join(requirements).encode()).hexdigest()[:16]
    path = os.path.join(CACHE, "%s-%s" % (label, digest))
    stamp = os.path.join(path, ".complete")
    if os.path.exists(stamp):
        return path
    os.makedirs(CACHE, exist_ok=True)
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(stamp):
            subprocess.run(["rm", "-rf", path], check=True)
            subprocess.run([sys.executable, "-m", "venv", path], check=True)
            subprocess.run(
                [
                    os.path.join(path, "bin", "pip"),
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    "-c",
                    LOCK_FILE,
                    *requirements,
                ],
                check=True,
            )
            open(stamp, "w").close()
    return path


@pytest.fixture(scope="session")
def core_only_venv():
    """A venv with the pinned ansible-core alone: no ``ansible`` package, no bundled collections."""
    return cached_venv("core-only", [lock_pin("ansible-core")])


@pytest.fixture(scope="session")
def collection_tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    subprocess.run(
        ["ansible-galaxy", "collection", "build", "--output-path", str(out), REPO_ROOT],
        check=True,
        capture_output=True,
    )
    (tarball,) = out.glob("neuron_ops-core_dump-*.tar.gz")
    return tarball


@pytest.fixture(scope="session")
def core_only_env(core_only_venv):
    """Environment factory: ansible-core alone, and only ``collections_path`` provides collections."""
    return lambda collections_path: _core_only_env(core_only_venv, collections_path)


def _core_only_env(venv, collections_path):
    # Nothing inherited may point ansible at other collections or configuration.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONPATH"}
    env.update(
        PATH=os.path.join(venv, "bin") + os.pathsep + env["PATH"],
        ANSIBLE_COLLECTIONS_PATH=str(collections_path),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
    )
    return env


@pytest.fixture(scope="session")
def moto_ec2(tmp_path_factory):
    """A moto server of our own on a free loopback port: the EC2 API the inventory reads."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out)
    url = "http://127.0.0.1:%d" % port
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("moto_server did not start: %s" % log.read_text())
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def bundled_collections():
    """Directory holding ``ansible_collections`` of the ``ansible`` package in the main venv."""
    spec = importlib.util.find_spec("ansible_collections")
    for base in spec.submodule_search_locations:
        if os.path.isdir(os.path.join(base, "community")):  # not the checkout's own link
            return os.path.dirname(base)
    pytest.fail("the ansible package is not installed in this venv")


@pytest.fixture(scope="session")
def builder_venv():
    """ansible-builder, pinned here until it joins requirements/ (it is not in the lock yet)."""
    return cached_venv("ansible-builder", ["ansible-builder==3.2.0"])


@pytest.fixture(scope="session")
def pinned():
    """The lock's ``name==version`` for a package name."""
    return lock_pin
