"""``list``/``info`` describe each dump (job, error, ids, origin, upload state), and the uploader
notifies once per written manifest: real hook, real CLI, real uploader processes, real moto,
a real notify command run as a real unprivileged user and a real datagram socket speaking
journald's native protocol."""

import json
import os
import socket
import struct
import time

import pytest
from ncd_bed import INSTANCE_ID, NOBODY, fail_job

JOB = "dt-20260101-000000-cid-0000000000000000"
KEYS = {"name", "path", "job_key", "job", "time", "error_code", "error_name", "error_location", "neff_name",
        "neff_uuid", "pids", "ranks", "devices", "cores", "files", "bytes", "origin", "upload"}  # fmt: skip
MESSAGE_ID = "3b3fa714a115419c820e95de66c4546c"  # docs/operations.md: fixed forever


def _listing(bed, *args):
    return json.loads(bed.run_cli("list", "--json", *args, check=True).stdout)


def _by_name(listing):
    return {d["name"]: d for d in listing["dumps"]}


# --- the fields ----------------------------------------------------------------------------------


def test_two_dumps_uploaded_and_failing_have_the_right_fields(s3bed):
    bed = s3bed
    done, failing = bed.dump_dir(JOB), bed.dump_dir("dt-20260102-000000-cid-00000000000000ff")
    fail_job(bed, done, "s3://%s/fleet/%s" % (bed.bucket, JOB))
    bed.run_cli("upload", check=True)
    fail_job(bed, failing, "s3://%s/fleet/other" % bed.bucket, ranks=1)
    bed.write_config({"s3": dict(bed.base_config()["s3"], endpoint_url="http://127.0.0.1:9", max_attempts=1)})
    assert bed.run_cli("upload").returncode == 1  # S3 unreachable for this one: it stays queued
    listing = _listing(bed)
    assert listing["total"] == 2 and listing["limit"] is None
    item = _by_name(listing)[JOB]
    assert set(item) >= KEYS
    assert item["job_key"] == JOB and item["job"] == {"d": "20260101-000000", "c": "0000000000000000"}
    assert (item["error_code"], item["error_name"], item["error_location"]) == (1006, "NRT_EXEC_OOB", "nrt_execute()")
    assert (item["neff_name"], item["neff_uuid"]) == ("model", "u-1")
    assert item["pids"] == [500, 501] and item["ranks"] == [0, 1] and item["devices"] == [0, 1] and item["cores"] == [1]
    assert item["files"] == len(os.listdir(done)) and item["bytes"] > 0
    assert item["origin"] == {"kind": "host", "uid": 0, "user": "root"}
    manifest_uri = "s3://%s/fleet/%s/%s-manifest.json" % (bed.bucket, JOB, INSTANCE_ID)
    assert item["upload"] == {"state": "uploaded", "last_error": None, "manifest_uri": manifest_uri}
    assert time.strptime(item["time"], "%Y-%m-%dT%H:%M:%SZ")
    other = _by_name(listing)["dt-20260102-000000-cid-00000000000000ff"]
    assert other["job_key"] == "dt-20260102-000000-cid-00000000000000ff" and other["ranks"] == [0]
    assert other["upload"]["state"] == "failed" and other["upload"]["manifest_uri"] is None
    assert "127.0.0.1:9" in other["upload"]["last_error"] or "connect" in other["upload"]["last_error"].lower()
    # info gives the same fields from the same code, plus the files and records
    info = json.loads(bed.run_cli("info", JOB, "--json", check=True).stdout)
    assert {k: info[k] for k in KEYS} == {k: item[k] for k in KEYS}
    assert len(info["file_list"]) == item["files"] and len(info["records"]) == 4
    text = bed.run_cli("list", check=True).stdout
    assert "NRT_EXEC_OOB (1006)" in text and "failed" in text


def test_limit_keeps_the_newest_and_counts_all(bed):
    for index, name in enumerate(["dt-a", "dt-b", "dt-c"]):
        path = bed.make_dump(name, {"x": b"1"})
        stamp = time.time() - 1000 + index * 100
        os.utime(os.path.join(path, "x"), (stamp, stamp))
    listing = _listing(bed, "--limit", "2")
    assert [d["name"] for d in listing["dumps"]] == ["dt-c", "dt-b"]
    assert listing["total"] == 3 and listing["limit"] == 2
    assert "2 of 3 dumps shown" in bed.run_cli("list", "--limit", "2", check=True).stdout
    assert bed.run_cli("list", "--limit", "-1").returncode == 2


def test_a_job_key_from_the_name_when_there_are_no_records(bed):
    bed.write_config({"hook": dict(bed.base_config()["hook"], fallback_dump_dir=bed.dumps + "/%d_%c_%i")})
    bed.make_dump("20260101-000000_0123456789abcdef_i-0abc", {"%s-nd2-nc3-pid-7-tid-7-lid-0" % INSTANCE_ID: b"hw"})
    bed.make_dump("my-own-dir", {"x": b"1"})
    found = _by_name(_listing(bed))
    named = found["20260101-000000_0123456789abcdef_i-0abc"]
    assert named["job_key"] == "dt-20260101-000000-cid-0123456789abcdef" and named["job_source"] == "name"
    assert named["devices"] == [2] and named["cores"] == [3] and named["pids"] == [7]
    assert found["my-own-dir"]["job_key"] == "my-own-dir" and found["my-own-dir"]["job"] == {"d": None, "c": None}


def test_hostile_dumps_never_break_the_listing(bed):
    """A user's dump dir full of forgeries, links and odd names: list answers, in strict JSON, with nothing leaked."""
    dump = bed.make_dump(JOB, {})
    os.symlink("/etc/shadow", os.path.join(dump, "i-1-ncd-core-pid-1-x.json"))
    os.symlink("/etc", os.path.join(bed.dumps, "dt-link-cid-0"))  # a link is not a dump
    os.mkfifo(os.path.join(dump, "i-1-ncd-core-pid-2-x.json"))
    with open(os.path.join(dump, "i-1-ncd-core-pid-3-x.json"), "wb") as handle:
        handle.truncate(3 * 1024**3)  # a sparse 3 GiB "record": never read
    with open(os.path.join(dump, "i-1-ncd-core-pid-4-x.json"), "w") as handle:
        json.dump({"flags": {"error-code": "1006\n\x1b[31m", "error-location": "\udcff" * 5000,
                             "neff-name": "\x00evil", "pid": "1" * 100}}, handle)  # fmt: skip
    os.mkdir(os.fsencode(bed.dumps) + b"/dt-\xff\xfe-cid-0")
    proc = bed.run_cli("list", "--json", check=True)
    listing = json.loads(proc.stdout)  # strict: the CLI escapes what is not UTF-8
    proc.stdout.encode("utf-8")
    found = _by_name(listing)
    assert set(found) == {JOB, "dt-\\xff\\xfe-cid-0"}
    item = found[JOB]
    # links and FIFOs are not even files of the dump; the huge one is ignored unread
    assert item["error_code"] is None and item["pids"] == [] and item["records_ignored"] == 1
    assert (
        len(item["error_location"]) <= 4 * 256 + 10 and item["neff_name"] == "\x00evil"
    )  # JSON escapes it; core_dump_info prints it
    assert "root:" not in proc.stdout
    assert bed.run_cli("info", JOB, "--json", check=True).returncode == 0


# --- notification --------------------------------------------------------------------------------

NOTIFY_SCRIPT = """#!/bin/sh
# a real notify command: what it was given, as whom
out=%(out)s/$$-$(date +%%s%%N)
{ id -u; cat; } > "$out.tmp" && mv "$out.tmp" "$out.json"
%(tail)s
"""


def _notify_command(bed, tail=""):
    out = os.path.join(bed.base, "notified")
    os.makedirs(out)
    os.chmod(out, 0o1777)
    script = os.path.join(bed.base, "bin", "notify.sh")
    with open(script, "w") as handle:
        handle.write(NOTIFY_SCRIPT % {"out": out, "tail": tail})
    os.chmod(script, 0o755)
    return script, out


def _messages(out):
    found = []
    for name in sorted(os.listdir(out)):
        if name.endswith(".json"):
            with open(os.path.join(out, name)) as handle:
                uid, _nl, body = handle.read().partition("\n")
            found.append((int(uid), json.loads(body)))
    return found


def _wait_for(predicate, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_the_command_gets_one_message_per_dump_as_the_user(s3bed):
    bed = s3bed
    script, out = _notify_command(bed)
    bed.write_config({"notify": {"command": [script, "--flag"], "user": "nobody", "journal": False}})
    assert bed.run_cli("check-config", check=True).returncode == 0
    dump = bed.dump_dir(JOB)
    prefix = "s3://%s/fleet/%s" % (bed.bucket, JOB)
    fail_job(bed, dump, prefix)
    bed.run_cli("upload", check=True)  # returns once its notifications are done
    bed.enqueue(dump, prefix)  # the same dump again, nothing new in it: no second message
    bed.run_cli("upload", check=True)
    [(uid, message)] = _messages(out)
    assert uid == NOBODY
    assert message["event"] == "manifest_written" and message["schema"] == "neuron-core-dump/notify/v1"
    assert message["bucket"] == bed.bucket and message["prefix"] == prefix
    assert message["manifest_uri"] == "s3://%s/fleet/%s/%s-manifest.json" % (bed.bucket, JOB, INSTANCE_ID)
    assert message["upload"] == {"state": "uploaded", "last_error": None, "manifest_uri": message["manifest_uri"]}
    assert message["host"]["instance_id"] == INSTANCE_ID
    listed = _by_name(_listing(bed))[JOB]
    assert {k: message[k] for k in KEYS} == {k: listed[k] for k in KEYS}  # the same dict as list --json
    assert "notify: %s for %s done" % (script, dump) in bed.log_text()


def test_a_hanging_command_is_killed_and_delays_no_dump(s3bed, moto):
    bed = s3bed
    script, out = _notify_command(bed, tail="sleep 600")
    bed.write_config(
        {"notify": {"command": [script], "user": NOBODY, "timeout_seconds": 5, "max_concurrent": 1, "journal": False}}
    )
    dumps = [bed.dump_dir("dt-2026010%d-000000-cid-0" % n) for n in (1, 2, 3)]
    for dump in dumps:
        bed.make_dump(os.path.basename(dump), {"data": os.urandom(1000)})
        bed.enqueue(dump, "s3://%s/hang/%s" % (bed.bucket, os.path.basename(dump)))
    started = time.time()
    result = json.loads(bed.run_cli("upload", "--json", check=True).stdout)
    elapsed = time.time() - started
    assert result["dumps_done"] == 3
    manifests = [r for r in moto.app.ops(bed.bucket, "PutObject") if r["key"].endswith("-manifest.json")]
    assert len(manifests) == 3
    # every manifest was written before the first hanging command was even killed: that command
    # named its message by its start time (<pid>-<ns>.json) and was killed 5 s later
    first_started = min(int(n[: -len(".json")].rsplit("-", 1)[1]) for n in os.listdir(out) if n.endswith(".json")) / 1e9
    assert max(r["time"] for r in manifests) < first_started + 5
    assert 3 * 5 <= elapsed < 3 * 5 + 30  # one at a time, each killed at its timeout
    assert len(_messages(out)) == 3  # each got its message before hanging
    assert bed.log_text().count("killed after its timeout of 5s") == 3
    assert not os.popen("pgrep -u %d -f 'sleep 600'" % NOBODY).read().strip()  # the whole group is gone


def test_a_failing_command_is_logged_and_the_dump_is_uploaded(s3bed):
    bed = s3bed
    script, _out = _notify_command(bed, tail="echo broken pipe to pager >&2; exit 3")
    bed.write_config({"notify": {"command": [script], "user": "nobody"}})
    dump = bed.make_dump(JOB, {"data": b"x"})
    bed.enqueue(dump, "s3://%s/f/%s" % (bed.bucket, JOB))
    result = json.loads(bed.run_cli("upload", "--json", check=True).stdout)
    assert result["dumps_done"] == 1 and bed.queue_entries() == []
    assert "exited 3: broken pipe to pager" in bed.log_text()
    assert _by_name(_listing(bed))[JOB]["upload"]["state"] == "uploaded"


@pytest.mark.parametrize(
    ("notify", "message"),
    [
        ({"command": ["/bin/true"], "user": "root"}, "notify.user: must not be root"),
        ({"command": ["/bin/true"], "user": 0}, "notify.user: must not be root"),
        ({"command": ["/bin/true"]}, "notify.user: is required with notify.command"),
        ({"command": ["true"], "user": "nobody"}, "notify.command: must start with an absolute program path"),
        ({"command": "/bin/true", "user": "nobody"}, "notify.command: must be a list of strings"),
        ({"command": ["/bin/true"], "user": "no-such-user-ncd"}, "notify.user: no user 'no-such-user-ncd'"),
        ({"command": ["/nonexistent/notify"], "user": "nobody"}, "notify.command: /nonexistent/notify: No such file"),
        ({"command": ["/etc/passwd"], "user": "nobody"}, "notify.command: /etc/passwd is not an executable file"),
        ({"timeout_seconds": 0}, "notify.timeout_seconds: must be > 0"),
        ({"max_concurrent": 100}, "notify.max_concurrent: must be <= 64"),
        ({"journal_socket": "run/journal"}, "notify.journal_socket: must be an absolute path"),
    ],
)
def test_check_config_refuses_bad_notify_settings(bed, notify, message):
    bed.write_config({"notify": notify})
    proc = bed.run_cli("check-config")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_root_is_refused_at_run_time_too(s3bed):
    """A user that becomes uid 0 after check-config (or an alias of root) never runs the command."""
    bed = s3bed
    script, out = _notify_command(bed)
    from neuron_core_dump import notify  # the uploader's own code, past the config validator

    with pytest.raises(notify.NotifyError, match="uid 0"):
        notify.run_as("root")
    logged = []

    class Log:
        error = info = staticmethod(logged.append)

    assert notify.run_command([script], "root", {"path": "x"}, 5, Log) is None
    assert "must not run as root" in logged[0] and os.listdir(out) == []


# --- the journal entry ---------------------------------------------------------------------------


def _parse_native(datagram):
    """journald's native protocol: KEY=value lines, or KEY\\n<le64 length><bytes>\\n."""
    fields, rest = {}, datagram
    while rest:
        line, _nl, after = rest.partition(b"\n")
        if b"=" in line:
            key, _eq, value = line.partition(b"=")
            fields[key.decode()] = value.decode()
            rest = after
        else:
            (length,) = struct.unpack("<Q", after[:8])
            fields[line.decode()] = after[8 : 8 + length].decode()
            rest = after[8 + length + 1 :]
    return fields


def test_a_journal_entry_with_the_fixed_message_id(s3bed):
    bed = s3bed
    path = os.path.join(bed.base, "journal.socket")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(30)
    try:
        bed.write_config({"notify": {"journal_socket": path}})
        dump = bed.dump_dir(JOB)
        fail_job(bed, dump, "s3://%s/j/%s" % (bed.bucket, JOB), ranks=1)
        bed.run_cli("upload", check=True)
        fields = _parse_native(server.recv(65536))
    finally:
        server.close()
    assert fields["MESSAGE_ID"] == MESSAGE_ID and fields["PRIORITY"] == "5"
    assert fields["SYSLOG_IDENTIFIER"] == "neuron-core-dump"
    assert fields["NCD_JOB_KEY"] == JOB and fields["NCD_ERROR_NAME"] == "NRT_EXEC_OOB"
    assert fields["NCD_ERROR_CODE"] == "1006" and fields["NCD_DUMP_DIR"] == dump
    assert fields["NCD_MANIFEST_URI"] == "s3://%s/j/%s/%s-manifest.json" % (bed.bucket, JOB, INSTANCE_ID)
    assert JOB in fields["MESSAGE"] and "NRT_EXEC_OOB" in fields["MESSAGE"]


def test_without_a_journal_the_syslog_line_carries_the_id(s3bed):
    bed = s3bed
    bed.write_config({"notify": {"journal_socket": os.path.join(bed.base, "no-journal-here")}})
    dump = bed.make_dump(JOB, {"data": b"x"})
    bed.enqueue(dump, "s3://%s/s/%s" % (bed.bucket, JOB))
    bed.run_cli("upload", check=True)
    line = [x for x in bed.log_text().splitlines() if "MESSAGE_ID=" in x]
    assert len(line) == 1 and MESSAGE_ID in line[0] and "<5>" in line[0] and JOB in line[0]
