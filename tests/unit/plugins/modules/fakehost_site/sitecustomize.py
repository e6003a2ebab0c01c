"""Test-only: move module_utils/paths.py into a fake host tree inside a real module run.

ansible-playbook runs the real AnsiballZ payload with an interpreter wrapper that puts
this directory on PYTHONPATH. When the payload imports ``module_utils.paths``, every
absolute path in it is moved under ``$NCD_FAKEHOST_ROOT`` (as the unit tests' FakeHost
does in-process), then ``$NCD_FAKEHOST_PATHS`` (JSON {NAME: path}) sets single paths.
Nothing else of the module is touched; without the variables this file does nothing.
"""

import importlib.abc
import importlib.util
import json
import os
import sys

TARGET = "ansible_collections.neuron_ops.core_dump.plugins.module_utils.paths"


def _move(module):
    root = os.environ["NCD_FAKEHOST_ROOT"]
    for name in dir(module):
        value = getattr(module, name)
        if name.isupper() and isinstance(value, str) and value.startswith("/"):
            setattr(module, name, os.path.join(root, value.lstrip("/")))
    for name, value in json.loads(os.environ.get("NCD_FAKEHOST_PATHS") or "{}").items():
        setattr(module, name, value)


class _PathsFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        original = spec.loader.exec_module

        def exec_module(module):
            original(module)
            _move(module)

        spec.loader.exec_module = exec_module
        return spec


if os.environ.get("NCD_FAKEHOST_ROOT"):
    sys.meta_path.insert(0, _PathsFinder())
