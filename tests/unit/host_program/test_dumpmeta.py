"""What a dump is about, read from its records and names: typed, capped, and safe against forgeries."""

import json
import os

import pytest
from neuron_core_dump import config, dumpmeta, dumps, nrt_status


def test_error_codes_by_number_and_name():
    assert nrt_status.parse("1006") == (1006, "NRT_EXEC_OOB")
    assert nrt_status.parse("NRT_EXEC_OOB") == (1006, "NRT_EXEC_OOB")
    assert nrt_status.parse("NRT_OOB") == (1006, "NRT_EXEC_OOB")  # the developer guide's spelling
    assert nrt_status.parse("101") == (101, "NRT_EXEC_UNIT_DISABLED")
    assert nrt_status.parse("4242") == (4242, None)  # a code the table does not know keeps its number
    assert nrt_status.parse("-1") == (-1, None)
    for bad in ("", "x", "1e3", "99999999999", "\u0661\u0662", "1" * 50, None, 1006):
        assert nrt_status.parse(bad) == (None, None), bad


def test_the_table_is_the_headers():
    assert len(nrt_status.NAMES) == 28 and 8 not in nrt_status.NAMES and 12 not in nrt_status.NAMES
    assert nrt_status.NAMES[1206] == "NRT_NETWORK_PROXY_FAILURE"


@pytest.mark.parametrize(
    ("template", "name", "expected"),
    [
        ("/x/dt-%d-cid-%c", "dt-20260101-000000-cid-0000000000000000", ("20260101-000000", "0000000000000000")),
        ("/x/dt-%d-cid-%c", "dt-2026-01-01-00-00-cid-none", ("2026-01-01-00-00", "none")),
        ("/x/%d-%c-%i-%p", "20260101-000000-0-i-0abc-77", ("20260101-000000", "0")),
        ("/x/100%%-%d.%c", "100%-20260101-000000.0123456789abcdef", ("20260101-000000", "0123456789abcdef")),
        ("/x/dt-%d-cid-%c", "dt-x-cid-0", (None, None)),
        ("/x/dt-%d-cid-%c", "dt-\u0661\u0662345678-000000-cid-0", (None, None)),  # digits are ASCII digits
        ("/x/dt-%d-cid-%c", b"dt-\xff".decode("utf-8", "surrogateescape"), (None, None)),
    ],
)
def test_job_parts_from_the_directory_name(template, name, expected):
    assert dumpmeta.job_from_name(name, [dumpmeta.name_matcher(template)]) == expected


def test_a_pattern_without_both_parts_gives_no_matcher():
    assert dumpmeta.name_matcher("/x/%p-%d") is None
    assert dumpmeta.name_matcher("/x/dt-%d/cid-%c") is None  # only the last component names the dump


def test_job_key():
    assert dumpmeta.job_key("20260101-000000", "0", "whatever") == "dt-20260101-000000-cid-0"
    assert dumpmeta.job_key(None, "0", "my-dir") == "my-dir"


def _record(flags, env=None, time_ns=1_767_225_600_000_000_000):
    return json.dumps({"schema": "neuron-core-dump/record/v1", "kind": "core", "time_ns": time_ns,
                       "flags": flags, "env": env or {}})  # fmt: skip


def _files(path):
    return [(n, os.lstat(os.path.join(path, n)).st_size, 0) for n in sorted(os.listdir(path))]


def test_records_and_names_give_the_fields(tmp_path):
    dump = tmp_path / "dt-20260101-000000-cid-0000000000000000"
    dump.mkdir()
    flags = {"date-time": "20260101-000000", "cluster-id": "0000000000000000", "error-code": "1006",
             "error-location": "nrt_execute()", "neff-name": "model", "neff-uuid": "u-1", "pid": "500",
             "device-id": "3", "core-id": "1"}  # fmt: skip
    (dump / "i-1-ncd-core-pid-500-a.json").write_text(_record(flags, {"NEURON_PJRT_PROCESS_INDEX": "7"}))
    (dump / "i-1-ncd-runtime-pid-501-b.json").write_text(_record({"pid": "501", "runtime-generated": "/x"}))
    (dump / "i-1-nd5-nc6-pid-502-tid-502-lid-0").write_bytes(b"hw")
    (dump / "i-1-nd9-cc-core-2-pid-503-tid-503-lid-0").write_bytes(b"cc")
    (dump / "i-1-nrt-pid-504.log").write_text("tail")
    meta = dumpmeta.read(str(dump), _files(dump), []).as_dict()
    assert meta["job"] == {"d": "20260101-000000", "c": "0000000000000000"} and meta["job_source"] == "record"
    assert (meta["error_code"], meta["error_name"], meta["error_location"]) == (1006, "NRT_EXEC_OOB", "nrt_execute()")
    assert (meta["neff_name"], meta["neff_uuid"]) == ("model", "u-1")
    assert meta["pids"] == [500, 501, 502, 503, 504] and meta["ranks"] == [7]
    assert meta["devices"] == [3, 5, 9] and meta["cores"] == [1, 6]
    assert meta["record_count"] == 2 and meta["records_ignored"] == 0


def test_forged_records_are_ignored_or_capped_never_an_error(tmp_path):
    dump = tmp_path / "dt-20260101-000000-cid-0"
    dump.mkdir()
    secret = tmp_path / "shadow"
    secret.write_text(_record({"error-code": "1", "neff-name": "SECRET"}))
    os.symlink(str(secret), str(dump / "a-ncd-link.json"))  # a link is never followed
    os.mkfifo(str(dump / "b-ncd-fifo.json"))  # a FIFO never blocks the reader
    (dump / "c-ncd-huge.json").write_bytes(b" " * (dumpmeta.RECORD_MAX_BYTES + 1))
    (dump / "d-ncd-deep.json").write_text("[" * 100000 + "]" * 100000)
    (dump / "e-ncd-garbage.json").write_bytes(b"\xff\xfe{")
    types = {"pid": ["1", 2], "error-code": {"x": 1}, "neff-name": ["a", "b" * 10000], "device-id": "-1",
             "core-id": "99999999999"}  # fmt: skip
    (dump / "f-ncd-types.json").write_text(json.dumps({"flags": types, "time_ns": "soon", "env": []}))
    (dump / "g-ncd-list.json").write_text("[1, 2]")
    (dump / "h-ncd-forged-job.json").write_text(_record({"date-time": "../../etc", "cluster-id": "x/y"}))
    meta = dumpmeta.read(str(dump), _files(dump), [dumpmeta.name_matcher("dt-%d-cid-%c")]).as_dict()
    assert "SECRET" not in json.dumps(meta)
    assert meta["records_ignored"] == 6 and meta["record_count"] == 2
    assert meta["neff_name"] == "b" * dumpmeta.MAX_TEXT
    assert meta["pids"] == [1] and meta["devices"] == [] and meta["cores"] == [] and meta["error_code"] is None
    assert meta["job"] == {"d": "20260101-000000", "c": "0"} and meta["job_source"] == "name"  # not the forgery


def test_many_records_are_capped(tmp_path):
    dump = tmp_path / "d"
    dump.mkdir()
    for index in range(dumpmeta.MAX_RECORDS + 10):
        (dump / ("r-ncd-%05d.json" % index)).write_text(_record({"pid": str(index)}))
    meta = dumpmeta.read(str(dump), _files(dump), []).as_dict()
    assert meta["record_count"] == dumpmeta.MAX_RECORDS and meta["records_ignored"] == 10


def test_describe_of_a_dump_without_state(tmp_path):
    root = tmp_path / "dumps"
    (root / "dt-20260101-000000-cid-0").mkdir(parents=True)
    (root / "dt-20260101-000000-cid-0" / "i-1-nd0-nc1-pid-9-tid-9-lid-0").write_bytes(b"x" * 10)
    cfg = config.validate({"dump_roots": [str(root)], "state_dir": str(tmp_path / "state"),
                           "spool_dir": str(tmp_path / "spool")})  # fmt: skip
    found, _roots = dumps.scan(cfg)
    data = dumps.describe(found[0], dumps.name_matchers(cfg))
    assert data["job_key"] == "dt-20260101-000000-cid-0" and data["files"] == 1 and data["bytes"] >= 10
    assert data["upload"] == {"state": "local_only", "last_error": None, "manifest_uri": None}
    assert data["origin"]["kind"] == "host" and data["origin"]["uid"] == os.getuid()
    assert data["time"].endswith("Z") and data["cores"] == [1] and data["error_name"] is None
