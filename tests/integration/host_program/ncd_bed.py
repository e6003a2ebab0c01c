"""Helpers for the host-program tests: a bed for the host program, built from real processes,
real files and real boto3 against a real moto server.

``bed`` builds what the role installs on a host, inside one temp directory: the
package in a lib dir, the hook and CLI entry scripts rendered from the role's templates
with this tree's paths (tests/scratch_install.py), a dump root (1733), the
spool (incoming 1733) and the state dir. Nothing under /etc, /var or /opt is touched.

``moto`` is one in-process moto server (werkzeug, real HTTP on 127.0.0.1) for the
session, wrapped in a small WSGI middleware that records every request (operation,
key, headers) and can delay or refuse requests, so tests can count uploads, check
headers such as ``x-amz-expected-bucket-owner``, slow multipart parts down or
simulate an outage. Each test uses its own bucket.
"""

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests"))
import scratch_install  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"  # the hook's interpreter on a host (stdlib only)
INSTANCE_ID = "i-0123456789abcdef0"
ACCOUNT_ID = "123456789012"

if scratch_install.importable() not in sys.path:
    sys.path.insert(0, scratch_install.importable())

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


# --- moto ---------------------------------------------------------------------------------------


def _operation(method, path, query):
    if method == "PUT" and "partNumber" in query and "uploadId" in query:
        return "UploadPart"
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload"
    if method == "POST" and "uploadId" in query:
        return "CompleteMultipartUpload"
    if method == "GET" and "uploadId" in query:
        return "ListParts"
    if method == "DELETE" and "uploadId" in query:
        return "AbortMultipartUpload"
    parts = path.lstrip("/").split("/", 1)
    has_key = len(parts) == 2 and parts[1] != ""
    if method == "PUT":
        return "PutObject" if has_key else "CreateBucket"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "GET":
        return "GetObject" if has_key else "ListObjects"
    if method == "DELETE":
        return "DeleteObject" if has_key else "DeleteBucket"
    return method


class RecordingApp:
    """WSGI middleware: request log, outage switch and per-operation delays."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.requests = []
        self.down = False
        self.delays = {}

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        op = _operation(environ["REQUEST_METHOD"], path, query)
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        bucket, _unused, key = path.lstrip("/").partition("/")
        down = self.down
        item = {"op": op, "bucket": bucket, "key": key, "headers": headers, "time": time.time(), "status": None}
        if down:
            item["status"] = 503
        with self.lock:
            self.requests.append(item)
        if down:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"down"]
        delay = self.delays.get(op)
        if delay:
            time.sleep(delay)

        def recording_start_response(status, response_headers, exc_info=None):
            item["status"] = int(status.split()[0])
            return start_response(status, response_headers, exc_info)

        return self.app(environ, recording_start_response)

    def ops(self, bucket, op=None, key=None, ok_only=True):
        with self.lock:
            items = list(self.requests)
        return [
            r
            for r in items
            if r["bucket"] == bucket
            and (op is None or r["op"] == op)
            and (key is None or r["key"] == key)
            and (not ok_only or (r["status"] is not None and r["status"] < 300))
        ]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    def __init__(self):
        from moto.server import DomainDispatcherApplication, create_backend_app

        self.app = RecordingApp(DomainDispatcherApplication(create_backend_app))
        self.port = _free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.server = None
        self.thread = None

    def start(self):
        import logging

        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request drowns test output

        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("moto server did not start")

    def stop(self):
        """Really down: the port refuses connections until start() again (state is kept)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(10)
            self.server = None

    def client(self, **config):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(s3={"addressing_style": "path"}, **config),
        )

    def new_bucket(self):
        name = "ncd-%s" % uuid.uuid4().hex[:16]
        self.client().create_bucket(Bucket=name)
        return name


# --- the bed ------------------------------------------------------------------------------------


def deep_merge(base, changes):
    result = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = value
    return result


class Bed:
    def __init__(self, base, lib_dir, moto=None):
        self.base = base
        self.lib_dir = lib_dir
        self.moto = moto
        self.dumps = os.path.join(base, "dumps")
        self.vendor_root = os.path.join(base, "vendor-default")
        self.spool = os.path.join(base, "spool")
        self.incoming = os.path.join(self.spool, "incoming")
        self.queue = os.path.join(self.spool, "queue")
        self.state = os.path.join(base, "state")
        self.etc = os.path.join(base, "etc")
        self.config_path = os.path.join(self.etc, "config.json")
        self.iid_file = os.path.join(base, "board_asset_tag")
        self.vendor = os.path.join(base, "opt", "neuron-dump.distrib")
        self.bin = os.path.join(base, "bin")
        self.hook = os.path.join(self.bin, "neuron-dump")
        self.cli = os.path.join(self.bin, "neuron-core-dump")
        self.log = os.path.join(base, "log", "ncd.log")
        for path, mode in (
            (self.dumps, 0o1733),
            (self.vendor_root, 0o1733),
            (self.spool, 0o755),
            (self.incoming, 0o1733),
            (self.state, 0o755),
            (self.etc, 0o755),
            (self.bin, 0o755),
            (os.path.dirname(self.vendor), 0o755),
            (os.path.dirname(self.log), 0o1777),
        ):
            os.makedirs(path, exist_ok=True)
            os.chmod(path, mode)
        with open(self.iid_file, "w") as handle:
            handle.write(INSTANCE_ID + "\n")
        scratch_install.write_scripts(
            lib_dir,
            self.hook,
            self.cli,
            SYSTEM_PYTHON,
            sys.executable,
            config_file=self.config_path,
            vendor=self.vendor,
        )
        self.settings = {}
        self.write_config({})

    def base_config(self):
        config = {
            "dump_roots": [self.dumps, self.vendor_root],
            "spool_dir": self.spool,
            "state_dir": self.state,
            "log_file": self.log,
            "hook": {
                "vendor_path": self.vendor,
                "instance_id_file": self.iid_file,
                "versions_file": os.path.join(self.base, "versions.json"),
                "fallback_dump_dir": self.vendor_root + "/dt-%d-cid-%c",
            },
            "uploader": {"trigger": "none", "settle_seconds": 0, "imds_enabled": False, "lock_wait_seconds": 60},
            "capture": {"enabled": False},
            "retention": {"gc_after_upload": False},
        }
        if self.moto is not None:
            config["s3"] = {
                "endpoint_url": self.moto.url,
                "addressing_style": "path",
                "region": "us-east-1",
                "max_attempts": 2,
                "retry_base_seconds": 0.05,
                "retry_max_seconds": 0.2,
                "connect_timeout_seconds": 2,
                "read_timeout_seconds": 20,
            }
        return config

    def write_config(self, changes):
        self.settings = deep_merge(self.base_config(), changes)
        with open(self.config_path, "w") as handle:
            json.dump(self.settings, handle, indent=2)
        return self.settings

    def loaded_config(self):
        from neuron_core_dump import config

        return config.read(self.config_path)

    def dump_dir(self, name="dt-20260101-000000-cid-0000000000000000"):
        return os.path.join(self.dumps, name)

    @staticmethod
    def runtime_argv(dump_dir, pid=100, tid=100, log_id=0, device=None, core=None, prefix=None, runtime_file=None):
        argv = ["--pid", str(pid), "--tid", str(tid), "--log-id", str(log_id), "--instance-id", INSTANCE_ID]
        argv += ["--cluster-id", "0000000000000000", "--date-time", "20260101-000000", "--local-output-dir", dump_dir]
        if prefix:
            argv += ["--s3-output-prefix", prefix]
        if runtime_file:
            argv += ["--runtime-generated", runtime_file]
        else:
            argv += ["--neff-name", "model", "--neff-uuid", "u-1", "--error-location", "nrt_execute()"]
            argv += ["--error-code", "1006", "--device-id", str(device or 0), "--core-id", str(core or 0)]
        return argv

    def run_hook(self, argv, env=None, user=None, timeout=60, hook=None):
        """Run the hook like the runtime: fork/exec, wait. Returns (CompletedProcess, seconds)."""
        run_env = {"PATH": "/usr/bin:/bin", "NEURON_RT_LOG_LEVEL": "ERROR"}
        run_env.update(env or {})
        preexec = None
        if user is not None:

            def preexec():
                os.setgid(user)
                os.setgroups([])
                os.setuid(user)

        started = time.monotonic()
        proc = subprocess.run(
            [hook or self.hook, *argv],
            env=run_env,
            capture_output=True,
            timeout=timeout,
            preexec_fn=preexec,
            check=False,
        )
        return proc, time.monotonic() - started

    def run_cli(self, *args, timeout=120, check=False):
        env = dict(os.environ)
        env.update(S3_ENV)
        env.pop("INVOCATION_ID", None)
        proc = subprocess.run([self.cli, *args], env=env, capture_output=True, timeout=timeout, check=False, text=True)
        if check and proc.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s\n%s" % (args, proc.returncode, proc.stdout, proc.stderr))
        return proc

    def popen_cli(self, *args):
        env = dict(os.environ)
        env.update(S3_ENV)
        return subprocess.Popen([self.cli, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def log_text(self):
        try:
            with open(self.log, errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def write_vendor(self, body):
        with open(self.vendor, "w") as handle:
            handle.write(body)
        os.chmod(self.vendor, 0o755)

    def make_dump(self, name, files, mode=0o700):
        path = self.dump_dir(name)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
        for file_name, data in files.items():
            with open(os.path.join(path, file_name), "wb") as handle:
                handle.write(data)
            os.chmod(os.path.join(path, file_name), 0o600)
        return path

    def enqueue(self, dump_dir, prefix, uid=None):
        """Put a spool entry into incoming/ like the hook does (owned by ``uid`` when given)."""
        from neuron_core_dump import fsutil

        entry = {"schema": "neuron-core-dump/spool/v1", "dump_dir": dump_dir, "s3_prefix": prefix, "kind": "core"}
        name = "%s-%d.json" % (fsutil.unique_suffix(), os.getpid())
        path = os.path.join(self.incoming, name)
        tmp = os.path.join(self.incoming, "." + name)
        with open(tmp, "w") as handle:
            json.dump(entry, handle)
        if uid is not None:
            os.chown(tmp, uid, uid)
        os.rename(tmp, path)
        return path

    def queue_entries(self):
        try:
            names = [n for n in os.listdir(self.queue) if n.endswith(".json") and not n.startswith(".")]
        except FileNotFoundError:
            return []
        result = []
        for name in names:
            with open(os.path.join(self.queue, name)) as handle:
                result.append(json.load(handle))
        return result

    def incoming_entries(self):
        return [n for n in os.listdir(self.incoming) if not n.startswith(".")]


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def object_sha256(client, bucket, key):
    return hashlib.sha256(client.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


NOBODY = 65534


def job_flags(argv, dump):
    """The runtime passes the job's %d and %c to every call: those of the dump dir's name."""
    d, _sep, c = os.path.basename(dump)[len("dt-") :].partition("-cid-")
    argv[argv.index("--date-time") + 1] = d
    argv[argv.index("--cluster-id") + 1] = c
    return argv


def fail_job(bed, dump, prefix, ranks=2):
    """What the runtime does per rank: one call per core, then the runtime-generated call."""
    for rank in range(ranks):
        pid = 500 + rank
        env = {"NEURON_PJRT_PROCESS_INDEX": str(rank)}
        argv = bed.runtime_argv(dump, pid=pid, tid=pid, device=rank, core=1, prefix=prefix)
        assert bed.run_hook(job_flags(argv, dump), env=env)[0].returncode == 0
        log = os.path.join(bed.base, "nrt-%d.log" % pid)
        with open(log, "w") as handle:
            handle.write("runtime log of rank %d\n" % rank)
        argv = bed.runtime_argv(dump, pid=pid, tid=pid, log_id=9, prefix=prefix, runtime_file=log)
        assert bed.run_hook(job_flags(argv, dump), env=env)[0].returncode == 0
