"""A scratch install of the host program, laid out like the role lays it out on a host.

Everything lives below one directory of the bench's temp tree: the package (byte-compiled,
as the role does, because workload users cannot write ``__pycache__``), the hook and CLI
entry scripts rendered from the role's templates with this tree's paths
(tests/scratch_install.py), a dump root and spool ``incoming/`` (1733), state (0700) and the
config file.
Nothing under /etc, /var or /opt is touched.
"""

import json
import os
import re
import sys

from common import REPO_ROOT, BenchError, run_bounded

sys.path.insert(0, os.path.join(REPO_ROOT, "tests"))
import scratch_install

INSTANCE_ID = "i-0be0c4000000000b"
_ERROR_LINE = re.compile(r"^\S+\[\d+\] <[0-3]> ")  # the format of log.py's mirror file


def make_dirs(modes):
    for path, mode in modes:
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)  # makedirs applies the umask and never sets the sticky bit


class ScratchInstall:
    """One installed copy of the hook + CLI + config below ``base``."""

    def __init__(self, base, hook_python, cli_python, trigger="none", s3_endpoint=None):
        self.base = base
        self.lib = os.path.join(base, "lib")
        self.dumps = os.path.join(base, "dumps")
        self.spool = os.path.join(base, "spool")
        self.incoming = os.path.join(self.spool, "incoming")
        self.state = os.path.join(base, "state")
        self.config_path = os.path.join(base, "etc", "config.json")
        self.log_file = os.path.join(base, "log", "ncd.log")
        self.hook = os.path.join(base, "bin", "neuron-dump")
        self.cli = os.path.join(base, "bin", "neuron-core-dump")
        # no file there: the vendor chain is left out of every measurement
        self.vendor = os.path.join(base, "opt", "neuron-dump.distrib.absent")
        make_dirs(
            [
                (self.dumps, 0o1733),
                (self.spool, 0o755),
                (self.incoming, 0o1733),
                (self.state, 0o700),
                (os.path.dirname(self.config_path), 0o755),
                (os.path.dirname(self.log_file), 0o700),
                (os.path.dirname(self.hook), 0o755),
            ]
        )
        self._install_package(hook_python)
        self._write_config(trigger, s3_endpoint)
        # the uploader needs boto3, so the CLI runs on the bench's interpreter (the venv)
        scratch_install.write_scripts(
            self.lib, self.hook, self.cli, hook_python, cli_python, config_file=self.config_path, vendor=self.vendor
        )

    def _install_package(self, python):
        target = scratch_install.install(self.lib)
        # what the role's handler runs, with the hook's interpreter
        code, _out, err, _secs = run_bounded([python, "-m", "compileall", "-q", target], 60, None)
        if code != 0:
            raise BenchError("compileall of the scratch package failed: %s" % err.decode("utf-8", "replace"))

    def _write_config(self, trigger, s3_endpoint):
        config = {
            "dump_roots": [self.dumps],
            "spool_dir": self.spool,
            "state_dir": self.state,
            "log_file": self.log_file,
            "hook": {
                "vendor_path": self.vendor,
                "instance_id_file": os.path.join(self.base, "board_asset_tag"),
                "versions_file": os.path.join(self.base, "versions.json"),
                "fallback_dump_dir": self.dumps + "/dt-%d-cid-%c",
            },
            # settle 0: the bench writes the dump before the upload starts, nothing is still being written
            "uploader": {"trigger": trigger, "settle_seconds": 0, "imds_enabled": False},
            # extra capture runs neuron-ls & co., which do not exist here; it is not upload work
            "capture": {"enabled": False},
            "retention": {"gc_after_upload": False},
        }
        if s3_endpoint:
            config["s3"] = {"endpoint_url": s3_endpoint, "addressing_style": "path", "region": "us-east-1"}
        with open(os.path.join(self.base, "board_asset_tag"), "w") as handle:
            handle.write(INSTANCE_ID + "\n")
        with open(os.path.join(self.base, "versions.json"), "w") as handle:
            json.dump({"aws-neuronx-tools": "2.32.28.0"}, handle)
        with open(self.config_path, "w") as handle:
            json.dump(config, handle, indent=2)
        self.config = config

    def log_errors(self):
        """Lines the hook or uploader logged at LOG_ERR or worse (priority 0..3)."""
        try:
            with open(self.log_file, errors="replace") as handle:
                return [line.rstrip() for line in handle if _ERROR_LINE.match(line)]
        except FileNotFoundError:
            return []

    def spool_entries(self):
        return [name for name in os.listdir(self.incoming) if name.endswith(".json") and not name.startswith(".")]


def record_count(dump_dirs):
    """How many of our hook records exist in these dump dirs (one per successful hook call)."""
    total = 0
    for directory in dump_dirs:
        total += sum(1 for name in os.listdir(directory) if "-ncd-" in name)
    return total
