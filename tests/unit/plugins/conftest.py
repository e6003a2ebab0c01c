"""Shared fixtures: a fake host tree for the fixed paths, and a module runner."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contexts, paths


class ModuleExit(Exception):
    def __init__(self, result, failed):
        super().__init__(result.get("msg"))
        self.result = result
        self.failed = failed


class FakeHost:
    """Every path in module_utils.paths, moved under a temporary root."""

    def __init__(self, root, monkeypatch):
        self.root = str(root)
        self.monkeypatch = monkeypatch
        for name in dir(paths):
            value = getattr(paths, name)
            if name.isupper() and isinstance(value, str) and value.startswith("/"):
                monkeypatch.setattr(paths, name, self.path(value))
        os.makedirs(self.path("/etc"), exist_ok=True)
        # A login shell that behaves like /etc/profile: source every profile.d script.
        profile = 'for f in %s/*.sh; do [ -r "$f" ] && . "$f"; done; exec env -0' % self.path("/etc/profile.d")
        monkeypatch.setattr(contexts, "LOGIN_SHELL_ARGV", ["/bin/sh", "-c", profile])
        # "su -l {user}" stand-in: no PAM here, so the session sees only the profile scripts.
        monkeypatch.setattr(contexts, "SU_LOGIN_ARGV", ["/bin/sh", "-c", profile, "{user}"])

    def path(self, absolute):
        return os.path.join(self.root, absolute.lstrip("/"))

    def write(self, absolute, data, mode=0o644):
        full = self.path(absolute)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as handle:
            handle.write(data if isinstance(data, bytes) else data.encode())
        os.chmod(full, mode)
        return full

    def read(self, absolute):
        full = self.path(absolute)
        if not os.path.exists(full):
            return None
        with open(full, "rb") as handle:
            return handle.read()

    def snapshot(self):
        """{relative path: (bytes, mode)} of every file under the root."""
        found = {}
        for base, _dirs, files in os.walk(self.root):
            for name in files:
                full = os.path.join(base, name)
                with open(full, "rb") as handle:
                    found[os.path.relpath(full, self.root)] = (handle.read(), os.stat(full).st_mode)
        return found


@pytest.fixture
def host(monkeypatch):
    # Not pytest's tmp_path: its base is 0700, and the hook checks need a tree every user can search.
    root = tempfile.mkdtemp(prefix="fakehost-", dir="/tmp")
    os.chmod(root, 0o755)
    yield FakeHost(root, monkeypatch)
    shutil.rmtree(root)


class Commands:
    """Stands in for AnsibleModule.run_command/get_bin_path; records every command."""

    def __init__(self):
        self.calls = []
        self.responses = {}
        self.bins = {"systemctl": "/usr/bin/systemctl"}

    def respond(self, args, rc=0, out="", err=""):
        self.responses[tuple(args)] = (rc, out, err)

    def run_command(self, _module, args, **_kwargs):
        args = [os.path.basename(args[0]), *args[1:]]
        self.calls.append(" ".join(args))
        return self.responses.get(tuple(args), (0, "", ""))

    def get_bin_path(self, _module, name, required=False, opt_dirs=None):
        return self.bins.get(name)


@pytest.fixture
def commands(monkeypatch):
    fake = Commands()
    fake.respond(["systemctl", "--version"], out="systemd 252 (252.30-1~deb12u2)\n+PAM +AUDIT\n")

    def run_command(module, *args, **kwargs):
        return fake.run_command(module, *args, **kwargs)

    def get_bin_path(module, *args, **kwargs):
        return fake.get_bin_path(module, *args, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", get_bin_path)
    return fake


@pytest.fixture
def run_module(monkeypatch):
    """run_module(module, args, check_mode=False, diff=False) -> (result, failed)."""

    def exit_json(_self, **kwargs):
        raise ModuleExit(kwargs, False)

    def fail_json(_self, msg, **kwargs):
        kwargs["msg"] = msg
        raise ModuleExit(kwargs, True)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)

    def run(module, args, check_mode=False, diff=False):
        full = dict(args)
        full["_ansible_check_mode"] = check_mode
        full["_ansible_diff"] = diff
        with patch_module_args(full):
            try:
                module.main()
            except ModuleExit as done:
                return done.result, done.failed
        raise AssertionError("module returned without exit_json/fail_json")

    return run
