"""Tell someone a dump has landed: a command and a structured journal entry per written manifest.

The uploader calls :meth:`Notifier.submit` right after a dump's manifest is written (a
manifest left unchanged is not news, so a retried or re-run upload notifies nothing). The
work happens on ``notify.max_concurrent`` threads of the uploader, never on an upload's
path: a slow, failing or hanging command is logged and never holds a dump back.

Per notification:

- the message: :func:`dumps.describe` of the dump (the same dict ``list --json`` and
  ``core_dump_info`` give) with ``upload`` set to the upload that just finished, plus
  ``event``, ``schema``, ``bucket``, ``prefix``, ``manifest_uri`` and ``host``; every name is
  escaped by :func:`keys.clean`, so it is strict UTF-8 JSON whatever the files are called;
- the command (``notify.command``), when configured: run as ``notify.user`` (never uid 0,
  checked by uid at every run), its supplementary groups, a clean environment, ``cwd /``, in
  a session of its own, the message on stdin; killed with its process group after
  ``notify.timeout_seconds``. Its output (first 2000 bytes) is logged when it fails;
- the journal entry (``notify.journal``): sent over journald's native protocol
  (``notify.journal_socket``), ``MESSAGE_ID=`` :data:`MESSAGE_ID` with ``NCD_*`` fields; where
  there is no journal, one syslog line that carries the same id.

At most ``MAX_QUEUED`` notifications wait for a thread; past that (a flood of dumps with a
hanging command) new ones are dropped and logged: the dumps themselves are not affected.
"""

import contextlib
import json
import os
import signal
import threading
import time

from . import hostinfo, keys

# The fixed id of "a dump's manifest was written" in the journal (docs/operations.md). Never change it.
MESSAGE_ID = "3b3fa714a115419c820e95de66c4546c"
EVENT = "manifest_written"
SCHEMA = "neuron-core-dump/notify/v1"
MAX_QUEUED = 1000
MAX_OUTPUT_LOGGED = 2000
MAX_FIELD_CHARS = 4096
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class NotifyError(Exception):
    """The notify settings cannot work on this host (user missing or root, program missing)."""


def run_as(user):
    """The pwd entry of ``user`` (name or uid); NotifyError when missing or uid 0."""
    import pwd

    try:
        entry = pwd.getpwuid(user) if isinstance(user, int) else pwd.getpwnam(user)
    except (KeyError, OverflowError):
        raise NotifyError("notify.user: no user %r on this host" % (user,)) from None
    if entry.pw_uid == 0:
        raise NotifyError("notify.user: %r has uid 0; the notify command must not run as root" % (user,))
    return entry


def problems(config):
    """What ``check-config`` refuses beyond the file's syntax: the user and the program on this host."""
    notify = config["notify"]
    found = []
    if not notify["command"]:
        return found
    try:
        run_as(notify["user"])
    except NotifyError as exc:
        found.append(str(exc))
    program = notify["command"][0]
    try:
        import stat

        info = os.stat(program)
        if not stat.S_ISREG(info.st_mode) or not info.st_mode & 0o111:
            found.append("notify.command: %s is not an executable file" % program)
    except OSError as exc:
        found.append("notify.command: %s: %s" % (program, exc.strerror))
    return found


def message(config, dump_dir, dump_state, bucket, key_prefix, manifest_key, instance_id):
    """The JSON-ready message of one written manifest (see the module docstring)."""
    from . import dumps

    manifest_uri = "s3://%s/%s" % (bucket, manifest_key)
    dump = dumps.load_one(config, dump_dir, dump_state)
    if dump is not None:
        data = dumps.describe(dump, dumps.name_matchers(config))
    else:  # gone already (retention), or a dir below a dump: what the upload knows
        data = {"name": os.path.basename(dump_dir.rstrip("/")), "path": dump_dir}
    data["upload"] = {"state": "uploaded", "last_error": None, "manifest_uri": manifest_uri}
    data.update(
        event=EVENT,
        schema=SCHEMA,
        bucket=bucket,
        prefix="s3://%s/%s" % (bucket, key_prefix) if key_prefix else "s3://%s" % bucket,
        manifest_uri=manifest_uri,
        host={"instance_id": instance_id, "hostname": hostinfo.hostname()},
    )
    return keys.clean(data)


# --- the journal ---------------------------------------------------------------------------------


def journal_fields(data):
    """(name, value) pairs of the journal entry for ``data`` (a message)."""
    error = data.get("error_name") or (
        str(data["error_code"]) if data.get("error_code") is not None else "no error code"
    )
    text = "neuron core dump %s of job %s uploaded (%s): %s" % (
        data.get("path"),
        data.get("job_key") or data.get("name"),
        error,
        data.get("manifest_uri"),
    )
    fields = [
        ("MESSAGE", text),
        ("MESSAGE_ID", MESSAGE_ID),
        ("PRIORITY", "5"),
        ("SYSLOG_IDENTIFIER", "neuron-core-dump"),
        ("SYSLOG_FACILITY", "3"),
        ("NCD_EVENT", EVENT),
        ("NCD_JOB_KEY", data.get("job_key")),
        ("NCD_DUMP_DIR", data.get("path")),
        ("NCD_ERROR_CODE", data.get("error_code")),
        ("NCD_ERROR_NAME", data.get("error_name")),
        ("NCD_ERROR_LOCATION", data.get("error_location")),
        ("NCD_NEFF_NAME", data.get("neff_name")),
        ("NCD_FILES", data.get("files")),
        ("NCD_BYTES", data.get("bytes")),
        ("NCD_ORIGIN", (data.get("origin") or {}).get("kind")),
        ("NCD_BUCKET", data.get("bucket")),
        ("NCD_PREFIX", data.get("prefix")),
        ("NCD_MANIFEST_URI", data.get("manifest_uri")),
        ("NCD_INSTANCE_ID", (data.get("host") or {}).get("instance_id")),
    ]
    return [(name, str(value)[:MAX_FIELD_CHARS]) for name, value in fields if value is not None]


def _encode_field(name, value):
    raw = value.encode("utf-8", "backslashreplace")
    if b"\n" in raw:  # the protocol's binary form: name, newline, 64-bit little-endian length, data
        import struct

        return name.encode("ascii") + b"\n" + struct.pack("<Q", len(raw)) + raw + b"\n"
    return name.encode("ascii") + b"=" + raw + b"\n"


def journal_send(fields, socket_path):
    """Send one entry over journald's native protocol; False when there is no journal there."""
    import socket

    payload = b"".join(_encode_field(name, value) for name, value in fields)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.settimeout(1.0)  # a stuck journald must not hold a notifier thread
        sock.sendto(payload, socket_path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


# --- the command ---------------------------------------------------------------------------------


def run_command(argv, user, data, timeout, logger):
    """Run ``argv`` as ``user`` with ``data`` on stdin; the outcome is logged. Returns the exit status or None."""
    import subprocess
    import tempfile

    try:
        entry = run_as(user)
    except NotifyError as exc:
        logger.error("notify: command not run: %s" % exc)
        return None
    env = {"PATH": _PATH, "LANG": "C.UTF-8", "HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name}
    where = data.get("path")
    started = time.monotonic()
    with tempfile.TemporaryFile() as output:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=output,
                cwd="/",
                env=env,
                user=entry.pw_uid,
                group=entry.pw_gid,
                extra_groups=os.getgrouplist(entry.pw_name, entry.pw_gid),
                start_new_session=True,  # its own process group: the timeout kills all of it
                close_fds=True,
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            logger.error("notify: cannot start %s for %s: %s" % (argv[0], keys.display(str(where)), exc))
            return None
        try:
            proc.communicate(json.dumps(data).encode("ascii") + b"\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            logger.error(
                "notify: %s for %s killed after its timeout of %ss" % (argv[0], keys.display(str(where)), timeout)
            )
            return None
        except BaseException:
            _kill_group(proc)
            raise
        if proc.returncode != 0:
            output.seek(0)
            text = output.read(MAX_OUTPUT_LOGGED).decode("utf-8", "backslashreplace").strip()
            logger.error("notify: %s for %s exited %d: %s" % (argv[0], keys.display(str(where)), proc.returncode, text))
        else:
            logger.info(
                "notify: %s for %s done in %.1fs" % (argv[0], keys.display(str(where)), time.monotonic() - started)
            )
        return proc.returncode


def _kill_group(proc):
    with contextlib.suppress(OSError):  # already gone
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# --- the notifier ----------------------------------------------------------------------------------


class Notifier:
    """Bounded background notifications of one uploader process."""

    def __init__(self, config, logger):
        self.config = config
        self.settings = config["notify"]
        self.logger = logger
        self.enabled = bool(self.settings["command"]) or self.settings["journal"]
        self._pool = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0

    def submit(self, dump_dir, dump_state, bucket, key_prefix, manifest_key, instance_id):
        """Queue the notification of one written manifest; never blocks, never raises."""
        if not self.enabled:
            return
        try:
            import copy

            snapshot = copy.deepcopy(dump_state)  # the uploader goes on changing its own copy
            with self._lock:
                if self._pending >= MAX_QUEUED:
                    self.logger.error(
                        "notify: %d notifications already waiting; none sent for %s"
                        % (self._pending, keys.display(dump_dir))
                    )
                    return
                if self._pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._pool = ThreadPoolExecutor(self.settings["max_concurrent"], thread_name_prefix="notify")
                self._pending += 1
                self._pool.submit(self._notify, dump_dir, snapshot, bucket, key_prefix, manifest_key, instance_id)
        except Exception as exc:  # notifying is a courtesy: the upload is done and recorded
            self.logger.error("notify: cannot queue the notification of %s: %s" % (keys.display(dump_dir), exc))

    def _notify(self, dump_dir, dump_state, bucket, key_prefix, manifest_key, instance_id):
        try:
            data = message(self.config, dump_dir, dump_state, bucket, key_prefix, manifest_key, instance_id)
            if self.settings["journal"]:
                fields = journal_fields(data)
                if not journal_send(fields, self.settings["journal_socket"]):
                    self.logger.notice("%s MESSAGE_ID=%s" % (fields[0][1], MESSAGE_ID))
            if self.settings["command"]:
                run_command(self.settings["command"], self.settings["user"], data, self.settings["timeout_seconds"],
                            self.logger)  # fmt: skip
        except Exception as exc:
            self.logger.error("notify: notification of %s failed: %s" % (keys.display(dump_dir), exc))
        finally:
            with self._lock:
                self._pending -= 1
                self._idle.notify_all()

    def wait(self, timeout):
        """True when no notification is waiting or running (after at most ``timeout`` seconds)."""
        with self._lock:
            if self._pending:
                self._idle.wait(timeout)
            return self._pending == 0

    def close(self):
        """Wait for every notification: each command ends by its timeout at the latest."""
        while not self.wait(1.0):
            pass
        if self._pool is not None:
            self._pool.shutdown(wait=True)
