"""core_dump_info returns ``dumps`` from the real host program's ``list --json --limit N``.

The host program is the role's own files, installed the way the host-program integration
tests install it (tests/integration/host_program/ncd_bed.py): real hook calls write the
dumps, the real uploader sends one to a real moto server. Only the module's fixed path of
the host program points into that tree.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import paths
from ansible_collections.neuron_ops.core_dump.plugins.modules import core_dump_info

HOST_PROGRAM_TESTS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "integration", "host_program")
sys.path.insert(0, os.path.abspath(HOST_PROGRAM_TESTS))
pytest.importorskip("moto")
ncd_bed = pytest.importorskip("ncd_bed")

_spec = importlib.util.spec_from_file_location("host_program_fixtures", os.path.join(HOST_PROGRAM_TESTS, "conftest.py"))
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
moto = _fixtures.moto
lib_dir = _fixtures.lib_dir


@pytest.fixture
def installed(host, commands, lib_dir, moto, monkeypatch):
    bed = ncd_bed.Bed(host.path("/bed"), lib_dir, moto)
    os.chmod(host.path("/bed"), 0o755)
    bed.bucket = moto.new_bucket()
    monkeypatch.setattr(paths, "HOST_PROGRAM", bed.cli)
    host.write("/etc/environment", b"")
    return bed


def test_dumps_are_the_host_programs_list(installed, run_module):
    bed = installed
    uploaded = bed.dump_dir("dt-20260101-000000-cid-0000000000000000")
    bed.run_hook(bed.runtime_argv(uploaded, pid=7, device=2, core=1, prefix="s3://%s/f" % bed.bucket))
    bed.run_cli("upload", check=True)
    local = bed.make_dump("dt-odd-\udcff", {"x": b"1"})
    for path in (os.path.join(local, "x"), local):
        os.utime(path, (1, 1))  # the oldest
    result, failed = run_module(core_dump_info, {"dumps_limit": 1}, check_mode=True)  # read-only: runs in check mode
    assert not failed and result["dumps_error"] is None
    assert result["dumps_total"] == 2
    [dump] = result["dumps"]
    assert dump["path"] == uploaded and dump["job_key"] == "dt-20260101-000000-cid-0000000000000000"
    assert (dump["error_code"], dump["error_name"]) == (1006, "NRT_EXEC_OOB")
    assert dump["pids"] == [7] and dump["devices"] == [2] and dump["cores"] == [1]
    assert dump["upload"]["state"] == "uploaded" and dump["upload"]["manifest_uri"].startswith(
        "s3://%s/f/" % bed.bucket
    )
    listed = json.loads(bed.run_cli("list", "--json", check=True).stdout)["dumps"]
    assert listed[0] == dump  # the same fields from the same code
    result, _failed = run_module(core_dump_info, {"dumps_limit": 0})
    assert [d["name"] for d in result["dumps"]][1] == "dt-odd-\\xff"  # escaped by the module's rule
    json.dumps(result, ensure_ascii=False).encode("utf-8")


def test_without_the_host_program(host, commands, run_module):
    host.write("/etc/environment", b"")
    result, failed = run_module(core_dump_info, {})
    assert not failed and result["dumps"] == [] and result["dumps_total"] is None
    assert "is not installed" in result["dumps_error"]


def test_a_negative_limit_is_refused(host, commands, run_module):
    result, failed = run_module(core_dump_info, {"dumps_limit": -1})
    assert failed and "dumps_limit must be 0" in result["msg"]
