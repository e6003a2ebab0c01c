from __future__ import annotations

import os

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import filewriter


def test_read_missing(tmp_path):
    assert filewriter.read_bytes(str(tmp_path / "nope")) is None
    assert filewriter.read_bytes(str(tmp_path / "nodir" / "nope")) is None


def test_change_and_diff_headers(tmp_path):
    path = str(tmp_path / "f")
    change = filewriter.FileChange("t", path, None, b"new\n")
    assert change.changed
    assert change.diff() == {"before_header": path + " (absent)", "after_header": path, "before": "", "after": "new\n"}
    assert not filewriter.FileChange("t", path, b"x", b"x").changed
    removal = filewriter.FileChange("t", path, b"old\n", None).diff()
    assert removal["after_header"] == path + " (absent)" and removal["before"] == "old\n"


def test_write_creates_parents_with_mode(tmp_path):
    path = str(tmp_path / "a" / "b" / "f")
    assert filewriter.FileChange("t", path, None, b"x").apply()
    with open(path, "rb") as handle:
        assert handle.read() == b"x"
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp")]


def test_write_keeps_existing_mode(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    os.chmod(path, 0o600)
    filewriter.write_atomic(str(path), b"new")
    assert path.read_bytes() == b"new" and os.stat(path).st_mode & 0o777 == 0o600


def test_write_through_a_symlink_keeps_the_link(tmp_path):
    real = tmp_path / "real"
    real.write_bytes(b"old")
    link = tmp_path / "link"
    link.symlink_to(real)
    filewriter.write_atomic(str(link), b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


def test_remove(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    assert filewriter.FileChange("t", str(path), b"x", None).apply()
    assert not path.exists()
    filewriter.remove(str(path))  # already gone: fine


def test_unchanged_apply_does_nothing(tmp_path):
    assert not filewriter.FileChange("t", str(tmp_path / "f"), None, None).apply()
    assert not (tmp_path / "f").exists()


def test_remove_empty_directory(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "x").write_bytes(b"")
    assert filewriter.remove_empty_directory(str(tmp_path / "d"))
    assert not filewriter.remove_empty_directory(str(tmp_path / "e"))
