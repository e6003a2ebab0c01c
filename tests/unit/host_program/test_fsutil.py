"""No-follow directory walking, atomic writes and no-follow deletes."""

import os

import pytest
from neuron_core_dump import fsutil

NOBODY = 65534


def _link(target, link, owner):
    os.symlink(target, link)
    os.lchown(link, owner, owner)


def test_walk_creates_missing_components_with_exact_modes(tmp_path):
    old = os.umask(0o077)
    try:
        fd = fsutil.walk(str(tmp_path / "a" / "b"), create_mode=0o700, created_modes={len(tmp_path.parts) - 1: 0o1733})
    finally:
        os.umask(old)
    os.close(fd)
    assert (tmp_path / "a" / "b").is_dir()
    assert oct((tmp_path / "a" / "b").stat().st_mode & 0o7777) == oct(0o700)


def test_created_modes_apply_to_their_index(tmp_path):
    root = tmp_path / "root"
    depth = len(fsutil.split_components(str(root)))
    fd = fsutil.walk(str(root / "dump"), create_mode=0o700, created_modes={depth - 1: 0o1733})
    os.close(fd)
    assert root.stat().st_mode & 0o7777 == 0o1733
    assert (root / "dump").stat().st_mode & 0o7777 == 0o700


def test_walk_refuses_user_symlinks_and_follows_root_ones(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    _link(str(real), str(tmp_path / "by-root"), 0)
    _link(str(real), str(tmp_path / "by-user"), NOBODY)
    os.close(fsutil.walk(str(tmp_path / "by-root")))
    with pytest.raises(fsutil.UnsafePathError):
        fsutil.walk(str(tmp_path / "by-user"))


def test_relative_root_link_with_dotdot_is_resolved(tmp_path):
    (tmp_path / "x" / "target").mkdir(parents=True)
    (tmp_path / "y").mkdir()
    _link("../x/target", str(tmp_path / "y" / "link"), 0)
    fd = fsutil.walk(str(tmp_path / "y" / "link"))
    try:
        assert os.fstat(fd).st_ino == (tmp_path / "x" / "target").stat().st_ino
    finally:
        os.close(fd)


def test_strict_part_refuses_even_root_links(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    _link(str(real), str(tmp_path / "link"), 0)
    strict_from = len(fsutil.split_components(str(tmp_path)))
    with pytest.raises(fsutil.UnsafePathError):
        fsutil.walk(str(tmp_path / "link"), strict_from=strict_from)


def test_link_to_a_file_is_not_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(fsutil.UnsafePathError):
        fsutil.walk(str(tmp_path / "file"))


def test_link_loops_end(tmp_path):
    _link(str(tmp_path / "b"), str(tmp_path / "a"), 0)
    _link(str(tmp_path / "a"), str(tmp_path / "b"), 0)
    with pytest.raises(OSError):
        fsutil.walk(str(tmp_path / "a"))


@pytest.mark.parametrize("path", ["relative/x", "/a/../b", "/a/\x00", ""])
def test_bad_paths(path):
    with pytest.raises(fsutil.UnsafePathError):
        fsutil.split_components(path)


def test_is_under_and_find_root():
    assert fsutil.is_under("/a/b/c", "/a/b")
    assert fsutil.is_under("/a/b/", "/a/b")
    assert not fsutil.is_under("/a/bc", "/a/b")
    assert not fsutil.is_under("/a/b/../c", "/a/b")
    assert fsutil.find_root("/v/l/dumps/x", ["/v", "/v/l/dumps"]) == "/v/l/dumps"
    assert fsutil.find_root("/etc", ["/v"]) is None


def test_write_new_file_is_atomic_and_private(tmp_path):
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fsutil.write_new_file(fd, "rec.json", b"{}", 0o600)
        assert (tmp_path / "rec.json").read_bytes() == b"{}"
        assert (tmp_path / "rec.json").stat().st_mode & 0o777 == 0o600
        assert [p.name for p in tmp_path.iterdir()] == ["rec.json"]
    finally:
        os.close(fd)


def test_write_new_file_leaves_no_temp_file_on_error(tmp_path):
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        (tmp_path / "sub").mkdir()
        with pytest.raises(OSError):
            fsutil.write_new_file(fd, "sub", b"x")  # renaming onto a directory fails
        assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]
    finally:
        os.close(fd)


def test_open_regular_refuses_links_fifos_and_dirs(tmp_path):
    (tmp_path / "file").write_text("x")
    os.symlink(str(tmp_path / "file"), str(tmp_path / "link"))
    os.mkfifo(str(tmp_path / "fifo"))
    (tmp_path / "dir").mkdir()
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        ok, _unused = fsutil.open_regular(fd, "file")
        os.close(ok)
        for name in ("link", "fifo", "dir"):
            with pytest.raises(OSError):
                fsutil.open_regular(fd, name)
    finally:
        os.close(fd)


def test_remove_tree_does_not_follow_links(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    victim = tmp_path / "dump"
    (victim / "sub").mkdir(parents=True)
    (victim / "sub" / "f").write_text("y")
    os.symlink(str(outside), str(victim / "link"))
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fsutil.remove_tree(fd, "dump")
    finally:
        os.close(fd)
    assert not victim.exists()
    assert (outside / "keep").exists()


def test_dir_usage_counts_files_not_link_targets(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 10000)
    big = tmp_path.parent / ("big-" + tmp_path.name)
    big.write_bytes(b"y" * 100000)
    try:
        os.symlink(str(big), str(tmp_path / "link"))
        fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            total, _unused = fsutil.dir_usage(fd)
        finally:
            os.close(fd)
        assert 10000 <= total < 50000
    finally:
        big.unlink()


def test_create_from_leaves_parents_alone(tmp_path):
    missing_parent = tmp_path / "parent" / "root" / "dump"
    with pytest.raises(FileNotFoundError):
        fsutil.walk(str(missing_parent), create_mode=0o700, create_from=len(missing_parent.parts) - 2)
    assert not (tmp_path / "parent").exists()
