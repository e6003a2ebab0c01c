"""Fixtures shared by the testinfra suites of every molecule scenario (pytest finds this
conftest because it sits above each scenario's tests/ directory)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bedtest import STAND_IN, STAND_IN_IN_HOST, copy_into, run_stand_in


@pytest.fixture(scope="module")
def stand_in(host):
    """Put the runtime stand-in (the test oracle) into the container; return a runner that
    starts it with a fully known environment and returns its JSON report."""
    copy_into(host, STAND_IN, STAND_IN_IN_HOST)

    def run(env: dict | None = None, args: str = "", user: str | None = None) -> dict:
        return run_stand_in(host, env, args, user)

    return run
