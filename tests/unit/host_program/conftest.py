"""Unit tests of the host program: import the package with the role's own layout."""

import sys

import scratch_install

if scratch_install.importable() not in sys.path:
    sys.path.insert(0, scratch_install.importable())


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: stress or timing tests; part of the default run")
