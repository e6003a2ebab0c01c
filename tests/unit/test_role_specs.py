"""Every role documents and validates exactly the variables it defaults, with the same
defaults (the spec is what ansible-doc shows and what argument validation enforces)."""

from __future__ import annotations

import os

import pytest
import yaml

ROLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")
ROLES = sorted(name for name in os.listdir(ROLES_DIR) if not name.startswith("."))


def load(role: str, *parts: str):
    path = os.path.join(ROLES_DIR, role, *parts)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


@pytest.mark.parametrize("role", ROLES)
def test_spec_and_defaults_name_the_same_variables(role):
    options = load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    defaults = load(role, "defaults", "main.yml")
    assert set(options) == set(defaults)


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_match_role_defaults(role):
    options = load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    defaults = load(role, "defaults", "main.yml")
    for name, option in options.items():
        assert option.get("default") == defaults[name], name


@pytest.mark.parametrize("role", ROLES)
def test_variables_carry_the_role_prefix(role):
    defaults = load(role, "defaults", "main.yml")
    assert all(name.startswith(role + "_") for name in defaults)
    internals = (
        load(role, "vars", "main.yml") if os.path.exists(os.path.join(ROLES_DIR, role, "vars", "main.yml")) else {}
    )
    assert all(name.startswith("__" + role + "_") for name in internals)
