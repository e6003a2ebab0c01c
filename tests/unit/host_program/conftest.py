"""Unit tests of the host program: import the package straight from the role's files dir."""

import os
import sys

FILES_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
    "roles",
    "neuron_dump",
    "files",
)
if FILES_DIR not in sys.path:
    sys.path.insert(0, FILES_DIR)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: stress or timing tests; part of the default run")
