"""Retention decisions on synthetic dumps: order, soft vs hard caps, age protection."""

import os

from neuron_core_dump import dumps, retention

NOW = 1_000_000.0
LIMITS = {
    "max_bytes": 300,
    "max_count": 100,
    "keep_free_bytes": 0,
    "hard_max_bytes": 1000,
    "hard_keep_free_bytes": 0,
    "min_age_seconds": 60,
}


class FakeDump:
    def __init__(self, name, status, size, age, dev=1):
        self.name = name
        self.path = "/r/" + name
        self.status = status
        self.bytes = size
        self.newest_mtime = NOW - age
        self.dev = dev


def _plan(items, limits=None, roots=None):
    merged = dict(LIMITS, **(limits or {}))
    return [(d.name, hard) for d, hard, _unused in retention.plan(items, roots or [], merged, now=NOW)]


def test_nothing_to_do_below_caps():
    assert _plan([FakeDump("a", dumps.UPLOADED, 100, 1000)]) == []


def test_uploaded_go_first_then_local_oldest_first():
    items = [
        FakeDump("local-old", dumps.LOCAL, 100, 5000),
        FakeDump("up-new", dumps.UPLOADED, 100, 1000),
        FakeDump("up-old", dumps.UPLOADED, 100, 4000),
        FakeDump("pending", dumps.PENDING, 100, 9000),
    ]
    assert _plan(items, {"max_bytes": 250}) == [("up-old", False), ("up-new", False)]
    assert _plan(items, {"max_bytes": 50}) == [("up-old", False), ("up-new", False), ("local-old", False)]


def test_young_dumps_are_protected_below_the_hard_cap():
    items = [FakeDump("young", dumps.UPLOADED, 500, 10), FakeDump("old", dumps.UPLOADED, 100, 500)]
    assert _plan(items, {"max_bytes": 100}) == [("old", False)]


def test_pending_only_past_the_hard_cap_and_last():
    items = [
        FakeDump("pending-old", dumps.PENDING, 400, 9000),
        FakeDump("pending-new", dumps.PENDING, 400, 100),
        FakeDump("young-up", dumps.UPLOADED, 400, 1),
    ]
    # soft cap exceeded but nothing deletable: pending stays
    assert _plan(items, {"max_bytes": 100, "hard_max_bytes": 1200}) == []
    # hard cap: the young uploaded one first (age no longer protects), then the oldest pending
    assert _plan(items, {"max_bytes": 100, "hard_max_bytes": 500}) == [("young-up", True), ("pending-old", True)]


def test_free_space_floor_is_per_file_system(tmp_path):
    items = [
        FakeDump("on-full-fs", dumps.UPLOADED, 100, 5000, dev=7),
        FakeDump("elsewhere", dumps.UPLOADED, 100, 6000, dev=8),
    ]
    retention_usage = retention._Usage(items, [])
    retention_usage.free = {7: 10, 8: 10**12}
    decisions = []
    for dump in sorted(items, key=lambda d: d.newest_mtime):
        if retention._reasons(retention_usage, dump, dict(LIMITS, keep_free_bytes=1000), hard=False):
            decisions.append(dump.name)
    assert decisions == ["on-full-fs"]


def test_count_cap():
    items = [FakeDump("d%d" % i, dumps.LOCAL, 1, 1000 + i) for i in range(5)]
    assert [name for name, _unused in _plan(items, {"max_count": 3})] == ["d4", "d3"]


def test_real_scan_of_a_root(tmp_path):
    root = tmp_path / "root"
    (root / "dt-1").mkdir(parents=True)
    (root / "dt-1" / "f").write_bytes(b"x" * 5000)
    (root / "stray-file").write_text("not a dump")
    os.symlink("/etc", str(root / "dt-link"))
    found, info = dumps.scan_root(str(root))
    assert [d.name for d in found] == ["dt-1"]
    assert info["exists"] and info["count"] == 1 and info["bytes"] >= 5000
    missing, info = dumps.scan_root(str(tmp_path / "missing"))
    assert missing == [] and info["exists"] is False


def test_over_quota_uid_is_evicted_first_and_alone_among_pending():
    """A flood (uid 7 over quota) never costs another uid's un-uploaded dump, even the oldest one."""
    items = [FakeDump("victim", dumps.PENDING, 400, 9000), FakeDump("up", dumps.UPLOADED, 100, 1000)]
    for index in range(3):
        items.append(FakeDump("flood-%d" % index, dumps.PENDING, 400, 100 * index))
    for item in items:
        item.uid = 7 if item.name.startswith("flood") else 1000
    items[1].uid = 7  # the flooder's uploaded dump goes before anyone else's
    decided = [(d.name, hard) for d, hard, _unused in retention.plan(items, [], LIMITS, now=NOW, over_quota={7})]
    assert decided[0] == ("up", False)
    assert "victim" not in [name for name, _hard in decided]
    assert [name for name, hard in decided if hard] == ["flood-0", "flood-1"]  # newest first, until below the cap
