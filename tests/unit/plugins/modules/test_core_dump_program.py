"""core_dump_program through real ansible-playbook (action plugin + module) on localhost, into a temp dir.

What the neuron_dump role relies on: one task installs or updates every file, a converged
host is one module call with nothing changed, only the files that differ are sent and
replaced (the others keep their inode), check mode predicts and writes nothing, the diff
shows each file, stale files of the package are purged, a symlink is refused and never
followed, and bad input is refused with nothing written.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
from local_play import run_local_play

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="installs root-owned files (the module's contract)")


def _play(tmp_path, task, check=False, diff=False, more=()):
    """Run the module with ``task``; ``more``: further argument sets, each run with ignore_errors (results in
    ``more``)."""
    extra = [
        {"neuron_ops.core_dump.core_dump_program": args, "register": "more_%d" % index, "ignore_errors": True}
        for index, args in enumerate(more)
    ]
    if more:
        task = {"files": []}
    tasks = [*extra, {"neuron_ops.core_dump.core_dump_program": task, "register": "out"}]
    result = "{'out': out, 'more': [%s]}" % ", ".join("more_%d" % index for index in range(len(more)))
    proc, answer = run_local_play(tmp_path, tasks, result, check, diff)
    return proc, None if answer is None else (answer["more"] if more else answer["out"])


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("A = 1\n")
    (src / "b.py").write_text("B = 2\n")
    root = tmp_path / "root"
    root.mkdir()
    pkg = root / "lib" / "pkg"
    task = {
        # pkg's parent is created too, as the file module does; spool with its own mode
        "directories": [str(pkg), {"path": str(root / "spool"), "mode": "1733"}],
        "files": [
            {"src": str(src / "a.py"), "dest": str(pkg / "a.py"), "mode": "0644"},
            {"src": str(src / "b.py"), "dest": str(pkg / "b.py"), "mode": "0644"},
            {"content": "#!/bin/sh\necho hook\n", "dest": str(root / "hook"), "mode": "0755"},
        ],
        "purge": [str(pkg)],
    }
    return {"src": src, "root": root, "pkg": pkg, "task": task}


def _snapshot(root):
    found = {}
    for dirpath, dirs, names in os.walk(root):
        for name in dirs + names:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            data = None
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    data = handle.read()
            found[os.path.relpath(path, root)] = (stat.S_IMODE(info.st_mode), info.st_ino, data)
    return found


def test_fresh_install_then_converged_run_changes_nothing(tree, tmp_path):
    proc, result = _play(tmp_path, tree["task"], check=True, diff=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result["changed"] and not (tree["root"] / "lib").exists()  # check mode wrote nothing
    predicted = [(c["path"], c["action"]) for c in result["changes"]]
    proc, result = _play(tmp_path, tree["task"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [(c["path"], c["action"]) for c in result["changes"]] == predicted
    assert (tree["pkg"] / "a.py").read_text() == "A = 1\n"
    hook = tree["root"] / "hook"
    assert hook.read_text() == "#!/bin/sh\necho hook\n" and stat.S_IMODE(hook.stat().st_mode) == 0o755
    assert stat.S_IMODE(tree["pkg"].stat().st_mode) == 0o755 and tree["pkg"].stat().st_uid == 0
    assert stat.S_IMODE((tree["root"] / "spool").stat().st_mode) == 0o1733
    before = _snapshot(tree["root"])
    proc, result = _play(tmp_path, tree["task"], diff=True)
    assert proc.returncode == 0 and not result["changed"] and result["changes"] == []
    assert _snapshot(tree["root"]) == before


def test_only_what_differs_is_replaced_and_the_diff_shows_it(tree, tmp_path):
    assert _play(tmp_path, tree["task"])[0].returncode == 0
    before = _snapshot(tree["root"])
    (tree["src"] / "b.py").write_text("B = 3\n")
    os.chmod(tree["root"] / "hook", 0o777)
    proc, result = _play(tmp_path, tree["task"], diff=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [(os.path.basename(c["path"]), c["action"]) for c in result["changes"]] == [
        ("b.py", "update"),
        ("hook", "attributes"),
    ]
    after = _snapshot(tree["root"])
    assert after["lib/pkg/a.py"] == before["lib/pkg/a.py"]  # same inode: not rewritten
    assert after["lib/pkg/b.py"][2] == b"B = 3\n" and after["lib/pkg/b.py"][1] != before["lib/pkg/b.py"][1]
    assert after["hook"][0] == 0o755
    assert "B = 3" in proc.stdout and "B = 2" in proc.stdout  # the text diff
    assert not [n for n in os.listdir(tree["pkg"]) if n.startswith(".")]  # no temporary left


def test_stale_package_files_and_their_bytecode_are_purged(tree, tmp_path):
    assert _play(tmp_path, tree["task"])[0].returncode == 0
    (tree["pkg"] / "old.py").write_text("OLD = 1\n")
    cache = tree["pkg"] / "__pycache__"
    cache.mkdir()
    (cache / "old.cpython-311.pyc").write_bytes(b"x")
    (cache / "a.cpython-311.pyc").write_bytes(b"x")
    proc, result = _play(tmp_path, tree["task"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [(os.path.basename(c["path"]), c["action"]) for c in result["changes"]] == [("old.py", "remove")]
    assert sorted(os.listdir(tree["pkg"])) == ["__pycache__", "a.py", "b.py"]
    assert os.listdir(cache) == ["a.cpython-311.pyc"]


def test_a_symlink_in_place_of_a_file_or_directory_is_refused_and_never_followed(tree, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (tree["root"] / "lib").mkdir()
    tree["pkg"].symlink_to(tmp_path)
    proc, _result = _play(tmp_path, tree["task"])
    assert proc.returncode != 0 and "is not a directory (a symlink is never followed)" in proc.stdout
    tree["pkg"].unlink()
    tree["pkg"].mkdir()
    (tree["root"] / "hook").symlink_to(victim)
    proc, _result = _play(tmp_path, tree["task"])
    assert proc.returncode != 0 and "is not a regular file" in proc.stdout
    assert victim.read_text() == "keep\n" and os.listdir(tree["pkg"]) == []


BAD = [
    ({"directories": [{"path": "/x", "mode": "rwx"}]}, "is not a path or a dict with path and an octal mode"),
    ({"directories": [{"path": "/x", "owner": "nobody"}]}, "has keys other than path and mode"),
    ({"mode": "rw-r--r--"}, "is not an octal mode"),
    ({"mode": "01000000"}, "is not an octal mode"),
    ({"dest": "relative/a.py"}, "is not an absolute, normalized path"),
    ({"dest": "/tmp/../etc/a.py"}, "is not an absolute, normalized path"),
    ({"content": "x"}, "give exactly one of src and content"),
    ({"src": "/nonexistent/a.py"}, "cannot read /nonexistent/a.py"),
]


def test_bad_input_is_refused_with_nothing_written(tree, tmp_path):
    runs = []
    for change, _message in BAD:
        task = json.loads(json.dumps(tree["task"]))
        if "directories" in change:
            task.update(change)
        else:
            task["files"][0].update(change)
        runs.append(task)
    proc, results = _play(tmp_path, None, more=runs)  # one playbook, one task per case
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for (change, message), result in zip(BAD, results):
        assert result.get("failed") and message in result["msg"], (change, result)
    assert os.listdir(tree["root"]) == []


def test_an_integer_mode_is_the_mode_yaml_reads(tree, tmp_path):
    task = tree["task"]
    task["files"][2]["mode"] = 0o750  # what YAML makes of an unquoted 0750
    assert _play(tmp_path, task)[0].returncode == 0
    assert stat.S_IMODE((tree["root"] / "hook").stat().st_mode) == 0o750
