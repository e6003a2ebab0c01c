"""The bucket-name and ``%`` rules have one implementation: module_utils owns it (the modules run
on hosts through AnsiballZ and cannot import from roles/), the host package carries byte-identical
copies that the neuron_dump role installs with it. The test oracle (tests/bed/fake_nrt.py) keeps
its own on purpose."""

from __future__ import annotations

import filecmp
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = ("patterns.py", "bucket_name.py")


@pytest.mark.parametrize("name", SHARED)
def test_the_host_package_carries_the_modules_copy(name):
    owner = os.path.join(REPO, "plugins", "module_utils", name)
    copy = os.path.join(REPO, "roles", "neuron_dump", "files", "neuron_core_dump", name)
    assert filecmp.cmp(owner, copy, shallow=False), "cp %s %s" % (owner, copy)
