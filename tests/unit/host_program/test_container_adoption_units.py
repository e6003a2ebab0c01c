"""Pure parts of adoption and of the OCI hook: names, config keys, the hook's refusals (always exit 0)."""

import io
import json
import time

import pytest
from neuron_core_dump import config, dump_name, oci_hook


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("dt-20250917-194443-cid-0000000000000000", {"d": "20250917-194443", "c": "0000000000000000"}),
        ("dt-2025-09-17-19-44-cid-none", {"d": "2025-09-17-19-44", "c": "none"}),
        ("dt-20250917-194443-cid-0", {"d": "20250917-194443", "c": "0"}),
        ("dt-20250917-194443-cid-00000000000000000", None),
        ("dt-20250917-194443-cid-../x", None),
        ("dt-2025-cid-none", None),
        ("x-dt-20250917-194443-cid-none", None),
        ("dt-20250917-194443-cid-none\n", None),
        (b"dt-20250917-194443-cid-none", {"d": "20250917-194443", "c": "none"}),
        (b"dt-\xff-cid-none", None),
    ],
)
def test_dump_names_the_runtime_makes_and_nothing_else(name, parsed):
    assert dump_name.parse(name) == parsed


def test_containers_config_defaults_and_refusals():
    settings = config.defaults()["containers"]
    assert settings["enabled"] is None and settings["quiet_seconds"] == 120 and settings["s3_prefix"] is None
    for key, value in (
        ("quiet_seconds", 1),
        ("max_wait_seconds", 10),
        ("s3_prefix", "http://x"),
        ("area", "relative"),
        ("max_depth", 99),
        ("max_name_bytes", 256),
        ("enabled", "yes"),
        ("unknown", 1),
    ):
        with pytest.raises(config.ConfigError) as caught:
            config.validate({"containers": {key: value}})
        assert caught.value.key == "containers." + key


@pytest.mark.parametrize(
    "argv", [[], ["--area"], ["--area", "relative"], ["--area", "/a/../b"], ["--area", "/a", "extra"], ["-x", "/a"]]
)
def test_hook_refuses_bad_arguments_but_exits_0(argv):
    with pytest.raises(oci_hook.HookError):
        oci_hook._area_argument(argv)
    assert oci_hook.main(argv, stdin=io.BytesIO(b"{}")) == 0


@pytest.mark.parametrize(
    "state",
    [b"", b"not json", b"[]", json.dumps({"id": "short", "bundle": "/x"}).encode(), b"\xff" * 10, b"{" * 100000],
)
def test_hook_exits_0_quickly_on_any_state(state, tmp_path):
    started = time.monotonic()
    assert oci_hook.main(["--area", str(tmp_path)], stdin=io.BytesIO(state)) == 0
    assert time.monotonic() - started < 5


def test_hook_with_no_spec_mount_changes_nothing(tmp_path):
    """A bundle whose rootfs has no mount at the container path (an image redirecting it): refused."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"root": {"path": "rootfs"}}))
    area = tmp_path / "area"
    (area / "shared").mkdir(parents=True)
    with pytest.raises(oci_hook.HookError, match="no mount"):
        oci_hook.run(str(area), {"id": "a" * 64, "bundle": str(bundle)})
    assert sorted(p.name for p in area.iterdir()) == ["shared"]


def test_hook_helpers():
    assert oci_hook._unescape(r"/a\040b\011c\\d") == "/a b\tc\\\\d"
    assert (
        oci_hook._host_uid_of_root({"linux": {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}})
        == 100000
    )
    assert oci_hook._host_uid_of_root({}) == 0
