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


def _task_names(tasks):
    """Yield (what, name) for every variable a task list defines: task vars, register, set_fact."""
    for task in tasks or []:
        for name in task.get("vars") or {}:
            yield "vars", name
        if "register" in task:
            yield "register", task["register"]
        for key in ("ansible.builtin.set_fact", "set_fact"):
            for name in task.get(key) or {}:
                if name != "cacheable":
                    yield "set_fact", name
        for key in ("block", "rescue", "always"):
            yield from _task_names(task.get(key))


@pytest.mark.parametrize("role", ROLES)
def test_task_variables_carry_the_role_prefix(role):
    # A caller's registered variable or fact outranks a task's vars: an unprefixed name such as
    # __files would be silently replaced by a caller's `register: __files` (it was, in rpm_upgrade).
    bad = []
    for directory in ("tasks", "handlers"):
        folder = os.path.join(ROLES_DIR, role, directory)
        for file in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            for what, name in _task_names(load(role, directory, file)):
                # A fact the role sets for its callers (dump_env_restart_required) is public.
                public = what == "set_fact" and name.startswith(role + "_")
                if not (name.startswith("__" + role + "_") or public):
                    bad.append("%s/%s: %s %s" % (directory, file, what, name))
    assert not bad
