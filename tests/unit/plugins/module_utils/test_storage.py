from __future__ import annotations

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import storage


def test_measure(tmp_path):
    root = tmp_path / "dumps"
    (root / "dt-1-cid-0").mkdir(parents=True)
    (root / "dt-1-cid-0" / "a").write_bytes(b"x" * 100)
    (root / "dt-1-cid-0" / "sub").mkdir()
    (root / "dt-1-cid-0" / "sub" / "b").write_bytes(b"x" * 50)
    (root / "dt-2-cid-0").mkdir()
    (root / "other").mkdir()
    (root / "other" / "big").write_bytes(b"x" * 1000)
    (root / "dt-link").symlink_to("/")  # counted, never followed
    report = storage.measure(str(root), "dt-")
    assert report["exists"] and report["count"] == 3 and report["bytes"] == 150
    assert report["free_bytes"] > 0 and not report["truncated"]
    assert storage.measure(str(root), "")["bytes"] == 1150


def test_missing_root_reports_free_space_of_the_parent(tmp_path):
    report = storage.measure(str(tmp_path / "nope" / "deeper"), "dt-")
    assert not report["exists"] and report["count"] == 0 and report["free_bytes"] > 0


def test_walk_is_bounded(tmp_path):
    root = tmp_path / "d"
    (root / "dt-x").mkdir(parents=True)
    for index in range(20):
        (root / "dt-x" / str(index)).write_bytes(b"x")
    assert storage.measure(str(root), "dt-", max_entries=5)["truncated"]
