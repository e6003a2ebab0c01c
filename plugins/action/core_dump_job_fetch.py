# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""core_dump_job_fetch: runs on the controller (an action, not a remote module), so it can print progress.

The work is plugin_utils/job_fetch.py; this file validates the arguments, builds the S3
client and turns the result into the task result (failed when incomplete).
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils import (
    job_expectations,
    job_fetch,
    job_source_dir,
    job_source_s3,
)

display = Display()

ARGUMENT_SPEC = {
    "prefix": {"type": "str"},
    "bucket": {"type": "str"},
    "key_prefix": {"type": "str", "default": ""},
    "job": {"type": "str"},
    "fleet_report": {"type": "path"},
    "from_dir": {"type": "path"},
    "dest": {"type": "path", "required": True},
    "expected_hosts": {"type": "list", "elements": "str", "default": []},
    "threads": {"type": "int", "default": 8},
    "max_file_bytes": {"type": "int"},
    "max_total_bytes": {"type": "int"},
    "fail_on_incomplete": {"type": "bool", "default": True},
    "progress_interval": {"type": "float", "default": 10.0},
    "region": {"type": "str"},
    "endpoint_url": {"type": "str"},
    "profile": {"type": "str"},
    "addressing_style": {"type": "str", "default": "auto", "choices": ["auto", "path", "virtual"]},
}


def _where(args):
    """(bucket, key prefix, job) from prefix, or from bucket + key_prefix + job."""
    if args["prefix"]:
        bucket, key_prefix = job_source_s3.split_prefix(args["prefix"])
        job = args["job"] or key_prefix.rsplit("/", 1)[-1]
        return bucket, key_prefix, job
    head = "/".join(part for part in args["key_prefix"].split("/") if part)
    bucket, key_prefix = job_source_s3.split_prefix(
        "s3://%s/%s" % (args["bucket"], "/".join(filter(None, [head, args["job"]])))
    )
    return bucket, key_prefix, args["job"]


def _client(args):
    try:
        return job_source_s3.client(
            args["region"], args["endpoint_url"], args["profile"], args["addressing_style"], args["threads"]
        )
    except ImportError:
        raise AnsibleActionFail("core_dump_job_fetch needs boto3 on the controller") from None
    except Exception as exc:  # botocore: unknown profile, bad endpoint
        raise AnsibleActionFail("cannot create the S3 client: %s" % exc) from None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _unused, args = self.validate_argument_spec(
            argument_spec=ARGUMENT_SPEC,
            mutually_exclusive=[("prefix", "bucket", "from_dir")],
            required_one_of=[("prefix", "bucket", "fleet_report", "from_dir")],
            required_by={"bucket": ("job",), "fleet_report": ("job",), "from_dir": ("job",)},
        )
        if not 1 <= args["threads"] <= 64:
            raise AnsibleActionFail("threads must be between 1 and 64, got %d" % args["threads"])
        for name in ("max_file_bytes", "max_total_bytes"):
            if args[name] is not None and args[name] < 0:
                raise AnsibleActionFail("%s must not be negative" % name)
        if any(not host.strip() for host in args["expected_hosts"]):
            raise AnsibleActionFail("expected_hosts holds an empty name: %r" % (args["expected_hosts"],))
        reasons = {}
        expected = list(args["expected_hosts"])
        try:
            if args["fleet_report"]:
                found = job_expectations.from_report(job_expectations.read_report(args["fleet_report"]), args["job"])
                reasons = found["reasons"]
                expected += [host for host in found["expected_hosts"] if host not in expected]
                if not (args["prefix"] or args["bucket"] or args["from_dir"]):
                    if not found["prefix"]:
                        raise ValueError(
                            "no host of job %s has a manifest in the fleet report; give prefix" % args["job"]
                        )
                    args["prefix"] = found["prefix"]
            if args["from_dir"] and args["prefix"] is None:
                source, job = job_source_dir.DirSource(args["from_dir"]), args["job"]
            else:
                bucket, key_prefix, job = _where(args)
                source = job_source_s3.S3Source(_client(args), bucket, key_prefix)
        except ValueError as exc:
            raise AnsibleActionFail("invalid job location: %s" % exc) from None
        host = self._task.get_name() if hasattr(self._task, "get_name") else "fetch"
        try:
            answer = job_fetch.fetch(
                source,
                args["dest"],
                job,
                expected_hosts=expected,
                expected_reasons=reasons,
                threads=args["threads"],
                check_mode=bool(self._task.check_mode),
                max_file_bytes=args["max_file_bytes"],
                max_total_bytes=args["max_total_bytes"],
                emit=lambda line: display.display("  [%s] %s" % (host, line)),
                progress_interval=args["progress_interval"],
            )
        except job_fetch.FetchError as exc:
            raise AnsibleActionFail(str(exc)) from None
        result.update(answer)
        result["changed"] = answer["downloaded_files"] > 0
        if not answer["complete"]:
            result["msg"] = "job %s is incomplete: %s" % (job, "; ".join(answer["problems"][:20]))
            if len(answer["problems"]) > 20:
                result["msg"] += "; and %d more" % (len(answer["problems"]) - 20)
            result["failed"] = bool(args["fail_on_incomplete"])
        else:
            result["msg"] = "job %s: %d files from %d host(s) verified in %s" % (
                job,
                answer["files"],
                answer["manifests"],
                answer["dest"],
            )
            # Shown here rather than by a debug task after it: one task less in fetch_job.yml.
            display.display("  [%s] %s" % (host, result["msg"]))
        return result
