"""A real local S3: ``moto_server`` on a free 127.0.0.1 port, in its own process group."""

import os
import signal
import socket
import subprocess
import time

from common import AWS_ENV, BenchError, find_tool, kill_group, tail

START_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 10


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """Start with :meth:`start`; :meth:`stop` is safe to call at any time, more than once."""

    def __init__(self, log_path, env):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = log_path
        self.env = env
        self.proc = None

    def start(self):
        argv = [find_tool("moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        with open(self.log_path, "wb") as log_handle:  # werkzeug logs one line per request: keep it out of ours
            self.proc = subprocess.Popen(
                argv, env=self.env, stdout=log_handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_until_serving()
        return self

    def _wait_until_serving(self):
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError("moto_server exited with %d:\n%s" % (self.proc.returncode, self._log_tail()))
            try:
                self.client(timeout=1).list_buckets()
                return
            except Exception:  # not listening yet (connection refused) or still importing
                time.sleep(0.1)
        raise BenchError("moto_server did not answer within %ds:\n%s" % (START_TIMEOUT_SECONDS, self._log_tail()))

    def _log_tail(self):
        with open(self.log_path, "rb") as handle:
            return tail(handle.read())

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            kill_group(self.proc)
        except ProcessLookupError:
            self.proc.wait()

    def cpu_seconds(self):
        """User + system CPU the server has used so far (all its threads), from /proc."""
        with open("/proc/%d/stat" % self.proc.pid) as handle:
            fields = handle.read().rpartition(")")[2].split()
        # after the command name: state is field 3, utime and stime are fields 14 and 15
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def client(self, timeout=60):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=AWS_ENV["AWS_DEFAULT_REGION"],
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": 1},
            ),
        )


def object_sizes(client, bucket, prefix):
    """{key relative to ``prefix``: size} of every object below ``prefix``."""
    sizes = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            sizes[item["Key"][len(prefix) :]] = item["Size"]
    return sizes


def delete_prefix(client, bucket, prefix):
    """Free moto's memory/disk between rounds (outside every timed section)."""
    keys = list(object_sizes(client, bucket, prefix))
    for start in range(0, len(keys), 1000):
        batch = [{"Key": prefix + key} for key in keys[start : start + 1000]]
        client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
