"""neuron_repo through real ansible-playbook on localhost, into a temp dir.

What the neuron_tools role relies on: one call removes the legacy leftovers and writes the
key and the files, a converged host changes nothing, check mode downloads and compares
but writes nothing, the diff shows each file, backups are kept where asked, a key that
cannot be downloaded or is not a public key block is refused with nothing changed, and
the module says whether python3-apt is importable.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import stat
import threading

import pytest
from local_play import run_local_play

KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBF1\n-----END PGP PUBLIC KEY BLOCK-----\n"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="writes root-owned files (the module's contract)")


def _play(tmp_path, task, check=False, diff=False):
    tasks = [{"neuron_ops.core_dump.neuron_repo": task, "register": "out", "ignore_errors": True}]
    proc, result = run_local_play(tmp_path, tasks, "out", check, diff)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return result


@pytest.fixture
def served(tmp_path):
    """An HTTP server on loopback serving ``tmp_path / 'www'``."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "key.asc").write_text(KEY)
    (www / "Release").write_text("Origin: not a key\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


@pytest.fixture
def host(tmp_path, served):
    root = tmp_path / "root"
    (root / "trusted.gpg.d").mkdir(parents=True)
    (root / "sources.list.d").mkdir()
    (root / "sources.list.d" / "neuron.list").write_text("deb https://apt.repos.neuron.amazonaws.com bookworm main\n")
    (root / "trusted.gpg.d" / "neuron.gpg").write_bytes(b"\x99\x01\x0d\x04binary")
    (root / "trusted.gpg.d" / "debian.gpg").write_bytes(b"\x99other")
    task = {
        "key_url": served + "/key.asc",
        "key_dest": str(root / "keyrings" / "neuron.asc"),
        "key_backup": True,
        "absent": [str(root / "sources.list.d" / "neuron.list"), str(root / "trusted.gpg.d" / "*neuron*")],
        "legacy_key_ids": ["5749CAD8646D9185"],
        "legacy_keyring": str(root / "trusted.gpg"),
        "files": [
            {"path": str(root / "sources.list.d" / "neuron.sources"), "content": "Types: deb\n", "backup": True},
            {"path": str(root / "preferences.d" / "neuron-tools.pref"), "content": "Pin: version 2.*\n"},
        ],
    }
    return {"root": root, "task": task, "url": served}


def _tree(root):
    found = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = (stat.S_IMODE(info.st_mode), info.st_ino, handle.read())
    return found


def test_check_mode_predicts_then_the_run_does_it_then_nothing_changes(host, tmp_path):
    root = host["root"]
    before = _tree(root)
    predicted = _play(tmp_path, host["task"], check=True, diff=True)
    assert predicted["changed"] and _tree(root) == before  # check mode wrote and removed nothing
    actions = [(os.path.relpath(c["path"], root), c["action"]) for c in predicted["changes"]]
    assert actions == [
        ("sources.list.d/neuron.list", "remove"),
        ("trusted.gpg.d/neuron.gpg", "remove"),
        ("keyrings/neuron.asc", "create"),
        ("sources.list.d/neuron.sources", "create"),
        ("preferences.d/neuron-tools.pref", "create"),
    ]
    key_diff = predicted["diff"][2]
    assert key_diff["after"] == KEY and key_diff["before_header"].endswith("(absent)")
    assert re.match(r"[0-9a-f]{64} 0644 root:root$", predicted["diff"][1]["before"])  # a binary file: summarized

    done = _play(tmp_path, host["task"])
    assert [(os.path.relpath(c["path"], root), c["action"]) for c in done["changes"]] == actions
    assert (root / "keyrings" / "neuron.asc").read_text() == KEY
    assert stat.S_IMODE((root / "keyrings" / "neuron.asc").stat().st_mode) == 0o644
    assert (root / "trusted.gpg.d" / "debian.gpg").exists()  # only the Neuron key goes
    assert not (root / "sources.list.d" / "neuron.list").exists()
    assert [entry["changed"] for entry in done["files"]] == [True, True, True]
    assert not any("backup_file" in entry for entry in done["files"])  # nothing there before

    converged = _tree(root)
    again = _play(tmp_path, host["task"], diff=True)
    assert not again["changed"] and again["changes"] == [] and again["diff"] == []
    assert _tree(root) == converged


def test_a_changed_file_is_backed_up_and_an_unpinned_file_removed(host, tmp_path):
    _play(tmp_path, host["task"])
    task = dict(host["task"])
    source, pin = (dict(spec) for spec in task["files"])
    source["content"] = "Types: deb\nURIs: http://mirror\n"
    del pin["content"]
    task["files"] = [source, pin]
    result = _play(tmp_path, task, diff=True)
    assert [(os.path.basename(c["path"]), c["action"]) for c in result["changes"]] == [
        ("neuron.sources", "update"),
        ("neuron-tools.pref", "remove"),
    ]
    source_entry = result["files"][1]
    assert source_entry["changed"] and "backup_file" in source_entry
    with open(source_entry["backup_file"], encoding="utf-8") as handle:
        assert handle.read() == "Types: deb\n"
    assert not os.path.exists(pin["path"])
    assert result["diff"][0]["before"] == "Types: deb\n"


def test_mode_is_put_back(host, tmp_path):
    _play(tmp_path, host["task"])
    key = host["root"] / "keyrings" / "neuron.asc"
    os.chmod(key, 0o600)
    result = _play(tmp_path, host["task"])
    assert [c["action"] for c in result["changes"]] == ["attributes"]
    assert stat.S_IMODE(key.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://127.0.0.1:9/key.asc", "Could not get the Neuron repository signing key from http://127.0.0.1:9/"),
        ("{url}/Release", "not an ASCII-armored PGP public key"),
        ("{url}/missing.asc", "Could not get the Neuron repository signing key from http://127.0.0.1:"),
    ],
)
def test_a_bad_key_is_refused_with_nothing_changed(host, tmp_path, url, message):
    before = _tree(host["root"])
    task = dict(host["task"], key_url=url.format(url=host["url"]))
    result = _play(tmp_path, task)
    assert result["failed"] and result["key_problem"]
    assert message in result["msg"]
    assert _tree(host["root"]) == before


def test_key_content_is_used_instead_of_the_url_and_checked(host, tmp_path):
    task = dict(host["task"], key_url="http://127.0.0.1:9/unreachable", key_content=KEY)
    assert not _play(tmp_path, task)["failed"]
    assert (host["root"] / "keyrings" / "neuron.asc").read_text() == KEY
    refused = _play(tmp_path, dict(task, key_content="not a key"))
    assert refused["failed"] and refused["key_problem"]


def test_without_a_key_only_the_files_are_managed(tmp_path):
    pin = tmp_path / "pin"
    result = _play(tmp_path, {"files": [{"path": str(pin), "content": "x\n"}]})
    assert result["changed"] and pin.read_text() == "x\n"
    assert result["files"] == [{"dest": str(pin), "changed": True}]


def test_reports_whether_python_apt_imports(tmp_path):
    try:
        import apt  # noqa: F401
        import apt_pkg  # noqa: F401

        expected = True
    except ImportError:
        expected = False
    assert _play(tmp_path, {})["python_apt"] is expected
