"""Fixtures for the host-program integration tests; the machinery lives in ncd_bed.py."""

import os
import shutil
import subprocess
import tempfile

import pytest
from ncd_bed import S3_ENV, SYSTEM_PYTHON, Bed, MotoServer, scratch_install


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: stress or timing tests; part of the default run")


@pytest.fixture(scope="session")
def moto():
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)  # dummy credentials, in this test process only
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def lib_dir():
    """The package as installed: copied to a lib dir readable by every user."""
    base = tempfile.mkdtemp(prefix="ncd-lib-")
    os.chmod(base, 0o755)
    scratch_install.install(base)
    subprocess.run([SYSTEM_PYTHON, "-m", "compileall", "-q", base], check=True)  # the role precompiles too
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def bed(lib_dir):
    base = tempfile.mkdtemp(prefix="ncd-bed-")
    os.chmod(base, 0o755)  # other users (the 'nobody' workload) must be able to traverse it
    try:
        yield Bed(base, lib_dir)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def s3bed(lib_dir, moto):
    base = tempfile.mkdtemp(prefix="ncd-bed-")
    os.chmod(base, 0o755)
    try:
        bed = Bed(base, lib_dir, moto)
        bed.bucket = moto.new_bucket()
        yield bed
    finally:
        shutil.rmtree(base, ignore_errors=True)
