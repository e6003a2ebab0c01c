"""The hook's main() in-process: never raises, always 0, writes only below its roots (incl. a 1,000-argv fuzz)."""

import json
import os
import re
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from neuron_core_dump import flags, hook

IID = "i-0123456789abcdef0"


class Tree:
    """A throw-away host layout: dump root, spool, state, config."""

    def __init__(self, base, **hook_settings):
        self.base = base
        self.root = os.path.join(base, "dumps")
        self.incoming = os.path.join(base, "spool", "incoming")
        for path in (self.root, self.incoming, os.path.join(base, "state")):
            os.makedirs(path)
        os.chmod(self.root, 0o1733)
        os.chmod(self.incoming, 0o1733)
        with open(os.path.join(base, "iid"), "w") as handle:
            handle.write(IID)
        settings_ = {
            "vendor_path": os.path.join(base, "no-vendor"),
            "instance_id_file": os.path.join(base, "iid"),
            "versions_file": os.path.join(base, "versions.json"),
            "fallback_dump_dir": self.root + "/dt-%d-cid-%c",
            "write_outside_roots": False,
            "log_stderr": "none",
        }
        settings_.update(hook_settings)
        self.config = os.path.join(base, "config.json")
        with open(self.config, "w") as handle:
            json.dump(
                {
                    "dump_roots": [self.root],
                    "spool_dir": os.path.join(base, "spool"),
                    "state_dir": os.path.join(base, "state"),
                    "hook": settings_,
                    "uploader": {"trigger": "none"},
                    "log_file": os.path.join(base, "hook.log"),
                },
                handle,
            )

    def files_outside_expected_places(self):
        allowed = {self.root, self.incoming, os.path.join(self.base, "state"), os.path.join(self.base, "spool")}
        known = ("config.json", "iid", "hook.log")
        strays = []
        for dirpath, _dirs, files in os.walk(self.base):
            if dirpath in allowed or dirpath.startswith(self.root + os.sep):
                continue
            strays.extend(os.path.join(dirpath, f) for f in files if f not in known)
        return strays

    def log(self):
        try:
            with open(os.path.join(self.base, "hook.log"), errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""


@pytest.fixture
def tree(tmp_path):
    return Tree(str(tmp_path))


def test_main_writes_record_and_entry(tree):
    dump = os.path.join(tree.root, "dt-1-cid-0")
    assert hook.main(["--pid", "3", "--local-output-dir", dump, "--s3-output-prefix", "s3://b/p"], tree.config) == 0
    (record,) = os.listdir(dump)
    assert record.startswith(IID + "-ncd-core-pid-3-tid-none-lid-none-")
    (entry,) = os.listdir(tree.incoming)
    with open(os.path.join(tree.incoming, entry)) as handle:
        assert json.load(handle)["s3_prefix"] == "s3://b/p"


def test_versions_file_is_copied_into_the_record(tree):
    with open(os.path.join(tree.base, "versions.json"), "w") as handle:
        json.dump({"aws-neuronx-tools": "2.32.28.0"}, handle)
    dump = os.path.join(tree.root, "dt-v")
    hook.main(["--local-output-dir", dump], tree.config)
    (record,) = os.listdir(dump)
    with open(os.path.join(dump, record)) as handle:
        assert json.load(handle)["tools"] == {"aws-neuronx-tools": "2.32.28.0"}


def test_outside_roots_is_refused_when_configured(tree, tmp_path):
    elsewhere = str(tmp_path / "elsewhere" / "dump")
    assert hook.main(["--local-output-dir", elsewhere], tree.config) == 0
    assert not os.path.exists(elsewhere)
    assert os.listdir(tree.incoming) == []


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("/r/dt-%d-cid-%c", "/r/dt-20260101-000000-cid-abc"),
        ("/r/%p-%t-%l-%i", "/r/7-8-9-i-1"),
        ("/r/100%%-%x-%", "/r/100%-%-%"),
        ("/r/%c", "/r/a_b"),
    ],
)
def test_expand_template_like_the_runtime(template, expected):
    parsed = flags.parse(
        ["--date-time", "20260101-000000", "--cluster-id", "abc", "--pid", "7", "--tid", "8", "--log-id", "9",
         "--instance-id", "i-1"]
    )  # fmt: skip
    if template == "/r/%c":
        parsed = flags.parse(["--cluster-id", "a/b"])  # a value never adds a path level
    assert hook.expand_template(template, parsed) == expected


FLAG_NAMES = st.sampled_from([*flags.KNOWN_FLAGS, "", "x", "local-output-dir=", "--", "\u2603", "runtime-generated"])
ANY_TEXT = st.text(max_size=64) | st.text(alphabet=st.characters(), max_size=8)
HUGE = st.integers(min_value=5000, max_value=200000).map(lambda n: "A" * n)
PATHISH = st.builds(
    lambda parts: "/" + "/".join(parts), st.lists(st.sampled_from(["..", ".", "dumps", "a", "", "\x00"]), max_size=5)
)
VALUES = ANY_TEXT | HUGE | PATHISH
FLAG_TOKEN = st.builds(lambda name: "--" + name, FLAG_NAMES)
EQ_TOKEN = st.builds(lambda name, value: "--%s=%s" % (name, value), FLAG_NAMES, VALUES)
ARGV = st.lists(st.one_of(FLAG_TOKEN, EQ_TOKEN, VALUES), max_size=30)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(argv=ARGV, under_root=st.booleans())
def test_fuzzed_argv_never_raises_and_always_returns_0(argv, under_root):
    base = tempfile.mkdtemp(prefix="ncd-fuzz-")
    try:
        tree = Tree(base)
        if under_root:
            argv = [*argv, "--local-output-dir", tree.root + "/dt-fuzz"]
        assert hook.main(argv, tree.config) == 0
        assert tree.files_outside_expected_places() == []
        # No unexpected exception, only handled refusals. The handler's message starts a log
        # line; a fuzzed path such as "hook failed" may appear inside a refusal's message.
        assert not re.search(r"^\S+\[\d+\] <\d+> hook failed: ", tree.log(), re.M), tree.log()
        if under_root:
            records = [n for n in os.listdir(tree.root + "/dt-fuzz") if n.endswith(".json")]
            assert len(records) == 1, tree.log()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--pid", "1", "--local-output-dir", "/x", "--tid", "2"],
            ["--pid", "1", "--local-output-dir", "/S", "--tid", "2"],
        ),
        (["--local-output-dir=/x"], ["--local-output-dir=/S"]),
        (["--pid", "1"], ["--pid", "1", "--local-output-dir", "/S"]),
        (["--local-output-dir", "--tid", "2"], ["--local-output-dir", "/S", "--tid", "2"]),
        (
            ["--local-output-dir", "/a", "--local-output-dir", "/b"],
            ["--local-output-dir", "/S", "--local-output-dir", "/S"],
        ),
    ],
)
def test_vendor_argv_points_the_vendor_at_the_safe_dir(argv, expected):
    assert hook.vendor_argv(argv, "/S") == expected


def test_relative_dump_dir_is_below_the_workload_cwd(tree, monkeypatch):
    monkeypatch.chdir(tree.root)
    hook.main(["--local-output-dir", "dt-rel"], tree.config)
    assert len(os.listdir(os.path.join(tree.root, "dt-rel"))) == 1
    assert len(os.listdir(tree.incoming)) == 1


def test_a_missing_dump_root_is_created_1733_but_not_its_parents(tmp_path):
    tree = Tree(str(tmp_path))
    os.rmdir(tree.root)
    hook.main(["--local-output-dir", tree.root + "/dt-1"], tree.config)
    assert os.stat(tree.root).st_mode & 0o7777 == 0o1733
    # a root whose parent is missing is not conjured up (the parent is the role's business)
    with open(tree.config) as handle:
        settings = json.load(handle)
    settings["dump_roots"] = [str(tmp_path / "not-made-by-the-role" / "dumps")]
    with open(tree.config, "w") as handle:
        json.dump(settings, handle)
    hook.main(["--local-output-dir", str(tmp_path / "not-made-by-the-role" / "dumps" / "dt-2")], tree.config)
    assert not (tmp_path / "not-made-by-the-role").exists()
