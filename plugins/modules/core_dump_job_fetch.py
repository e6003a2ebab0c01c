#!/usr/bin/python
# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# The work is done on the controller by plugins/action/core_dump_job_fetch.py; this file documents it.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: core_dump_job_fetch
short_description: Fetch one job's core dump from S3 to the controller, verified against every host's manifest
version_added: 0.1.0
description:
  - All ranks of one collectives run share the job's C(%d) and C(%c), so one failed multi-node job leaves one dump
    dir per host and one shared S3 prefix. This action downloads every host's files from that prefix into
    C(<dest>/<job>/<host>/) and checks each file's size and sha256 against the manifest its host's uploader wrote.
  - C(<host>) is the manifest's name without C(-manifest.json), that is the instance id, or the instance id and a
    12-hex tag when one host had two dump dirs or owners under the job. The manifest itself is kept as
    C(<dest>/<job>/<host>-manifest.json).
  - The task fails (the playbook exits non-zero) when the job is incomplete. Incomplete means that an expected
    host has no manifest, a listed file is missing, a file does not match, a manifest cannot be used, or a
    manifest entry was rejected. The result lists each problem.
  - Resumable. A file already in place with the right size and sha256 is not downloaded again. Every file is
    written to a temporary name and renamed into place only after it matched, and temporaries of an interrupted
    run are removed.
  - Parallel, with O(threads) files at a time, largest first. An S3 object larger than one part (8 MiB, or the
    job's bytes divided by O(threads) when that is larger) is fetched as byte ranges by up to O(threads) more
    connections and verified whole before it is renamed into place. A progress line (files, MiB, MiB/s) is
    printed every O(progress_interval) seconds.
  - Manifests are not trusted. An entry whose name is not one plain path component (C(..), C(/), NUL, a leading
    dot, the manifest suffix), whose key is not directly below the job prefix, or that is listed twice is rejected
    and never fetched. The job and host directories are opened without following symlinks. No object is read past
    the size its manifest gives, and the space needed is checked before anything is downloaded.
  - Runs on the controller (an action plugin) with boto3 and the controller's AWS credentials. It needs
    C(s3:ListBucket) on the job prefix and C(s3:GetObject) below it (and C(kms:Decrypt) with SSE-KMS).
  - For fleets without S3, see the C(neuron_ops.core_dump.pull_job) playbook.
author:
  - neuron_ops developers (@neuron-ops)
options:
  prefix:
    description:
      - The job's S3 prefix, C(s3://bucket/key/prefix/<job>), as the runtime expanded C(dump_env_s3_prefix).
      - The job name (the directory under O(dest)) is its last component unless O(job) is given.
    type: str
  bucket:
    description:
      - The bucket, with O(job) (and O(key_prefix)) instead of O(prefix).
    type: str
  key_prefix:
    description:
      - With O(bucket), the key prefix above the job, such as V(neuron) for C(s3://bucket/neuron/dt-%d-cid-%c).
    type: str
    default: ""
  job:
    description:
      - The job key, such as V(dt-20260301-101500-cid-00000000000000aa). Required with O(bucket) or
        O(fleet_report).
    type: str
  fleet_report:
    description:
      - A C(fleet-report.json) from the C(neuron_ops.core_dump.verify) playbook. Its Jobs row for O(job) gives the
        prefix (from the hosts' manifest URIs) when neither O(prefix) nor O(bucket) is given, and the expected
        hosts. A host the report lists as pending, failed or local only is reported missing with the report's
        reason.
    type: path
  from_dir:
    description:
      - Instead of S3, a directory on the controller holding C(<host>-manifest.json) files and the files they list
        under their C(key). The C(neuron_ops.core_dump.pull_job) playbook fills it from
        M(neuron_ops.core_dump.core_dump_job_stage). Requires O(job).
    type: path
  dest:
    description:
      - Directory on the controller. Created when missing; files go to C(<dest>/<job>/<host>/).
    type: path
    required: true
  expected_hosts:
    description:
      - Hosts that hold the job. Each is matched against every manifest's instance id, hostname and name; one that
        matches none is a missing host and makes the job incomplete.
    type: list
    elements: str
    default: []
  threads:
    description:
      - Files downloaded at a time, 1 to 64. The byte ranges of large objects use up to as many connections again.
    type: int
    default: 8
  max_file_bytes:
    description:
      - Reject (do not download) a manifest entry larger than this.
    type: int
  max_total_bytes:
    description:
      - Refuse the whole fetch when the manifests list more bytes than this.
    type: int
  fail_on_incomplete:
    description:
      - Fail the task when the job is incomplete. With V(false) the result still says RV(complete=false).
    type: bool
    default: true
  progress_interval:
    description:
      - Seconds between progress lines. V(0) turns them off.
    type: float
    default: 10.0
  region:
    description:
      - AWS region of the bucket. Default from the environment or profile.
    type: str
  endpoint_url:
    description:
      - S3 endpoint URL (VPC or FIPS endpoint, or an S3-compatible store).
    type: str
  profile:
    description:
      - AWS profile for the controller's credentials.
    type: str
  addressing_style:
    description:
      - S3 addressing style.
    type: str
    choices: [auto, path, virtual]
    default: auto
extends_documentation_fragment:
  - neuron_ops.core_dump.attributes
attributes:
  action:
    support: full
    description: Runs on the controller as an action plugin; no module is sent to the host.
  check_mode:
    description: Lists the manifests and compares what is already under O(dest). It downloads and creates nothing.
  diff_mode:
    support: none
    description: Returns no diff; the result lists what was downloaded and what is wrong.
  platform:
    platforms: posix
    description: Runs on the controller, which needs boto3.
notes:
  - Tested against moto's S3 server with dumps uploaded by the real C(neuron-core-dump) uploader.
seealso:
  - module: neuron_ops.core_dump.core_dump_info
"""

EXAMPLES = r"""
- name: Fetch the job named in the fleet report's summary
  neuron_ops.core_dump.core_dump_job_fetch:
    job: dt-20260301-101500-cid-00000000000000aa
    fleet_report: fleet-report.json
    dest: /srv/dumps

- name: Fetch a job by its S3 prefix, expecting three hosts
  neuron_ops.core_dump.core_dump_job_fetch:
    prefix: s3://example-neuron-dumps/neuron/dt-20260301-101500-cid-00000000000000aa
    dest: /srv/dumps
    expected_hosts: [i-0123456789abcdef0, i-0123456789abcdef1, i-0123456789abcdef2]
    threads: 16

- name: See what is there without downloading
  neuron_ops.core_dump.core_dump_job_fetch:
    bucket: example-neuron-dumps
    key_prefix: neuron
    job: dt-20260301-101500-cid-00000000000000aa
    dest: /srv/dumps
  check_mode: true
"""

RETURN = r"""
complete:
  description: Every expected host has a manifest, and every file of every manifest is in place and verified.
  returned: always
  type: bool
job:
  description: The job name, the directory below O(dest).
  returned: always
  type: str
dest:
  description: C(<dest>/<job>).
  returned: always
  type: str
source:
  description: The job prefix read.
  returned: always
  type: str
  sample: s3://example-neuron-dumps/neuron/dt-20260301-101500-cid-00000000000000aa
manifests:
  description: Number of usable manifests found.
  returned: always
  type: int
files:
  description: Files listed by the usable manifest entries.
  returned: always
  type: int
bytes:
  description: Their total size.
  returned: always
  type: int
downloaded_files:
  description: Files downloaded by this run.
  returned: always
  type: int
downloaded_bytes:
  description: Their bytes.
  returned: always
  type: int
present_files:
  description: Files already in place and verified, so not downloaded again.
  returned: always
  type: int
expected_hosts:
  description: The hosts that had to be found (from O(expected_hosts) and O(fleet_report)).
  returned: always
  type: list
  elements: str
missing_hosts:
  description: Expected hosts with no manifest.
  returned: always
  type: list
  elements: str
missing_host_reasons:
  description: For each missing host, why (from the fleet report), or V(null).
  returned: always
  type: dict
bad_manifests:
  description: Manifests that could not be used (C(key), C(reason)), such as non-JSON or a foreign schema.
  returned: always
  type: list
  elements: dict
hosts:
  description:
    - One entry per manifest. C(host) is the directory name, and C(instance_id), C(hostname), C(dump_dir),
      C(manifest_key) and C(written) come from the manifest. C(files) and C(bytes) are what it lists, and
      C(downloaded) and C(present) are counts.
    - C(missing) lists the names whose object does not exist. C(mismatched) and C(rejected) are lists of C(name)
      and C(reason). C(errors) are other failures, and C(skipped_by_uploader) lists what the uploader did not upload
      and why. C(would_download) appears in check mode only. C(complete) is a bool.
  returned: always
  type: list
  elements: dict
problems:
  description: One line per reason the job is incomplete.
  returned: always
  type: list
  elements: str
"""
