"""The neuron_dump role renders the uploader's allow-lists from the configured S3 prefix, and
refuses bad allow-list variables before changing anything.

Real ansible-core runs on localhost that change nothing on this machine: the play loads the
role's own defaults and vars, validates them with the role's own argument spec and
validate.yml, and writes the rendered config.json into a temp dir. The rendered file is then
read by the host program's own config reader (what ``check-config`` runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import scratch_install

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(REPO_ROOT, "roles", "neuron_dump")
COLLECTIONS = os.path.join(REPO_ROOT, ".bed", "collections")

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: true
  gather_subset: [min]
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
  tasks:
    - name: Validate like the role does at its start
      ansible.builtin.validate_argument_spec:
        argument_spec: "{{{{ (lookup('ansible.builtin.file', __specs) | from_yaml).argument_specs.main.options }}}}"
      vars:
        __specs: {role}/meta/argument_specs.yml
    - name: The role's own checks
      ansible.builtin.include_tasks: {role}/tasks/validate.yml
    - name: Render the config file
      ansible.builtin.copy:
        content: "{{{{ __neuron_dump_config_json }}}}"
        dest: {out}
        mode: "0644"
"""


def render(tmp_path, extra_vars):
    out = tmp_path / "config.json"
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(role=ROLE, out=out))
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps(extra_vars))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path))
    env.update(ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    env.update(ANSIBLE_LOCALHOST_WARNING="false")
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(play), "-e", "@%s" % extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    config = json.loads(out.read_text()) if out.exists() else None
    return proc, config


def host_program_accepts(config, tmp_path):
    """The host program's own reader (check-config) on the rendered file."""
    sys.path.insert(0, scratch_install.importable())
    try:
        from neuron_core_dump import config as config_mod
    finally:
        sys.path.remove(scratch_install.importable())
    path = tmp_path / "check.json"
    path.write_text(json.dumps(config))
    return config_mod.read(str(path))


PREFIX = "s3://dumps-bucket/neuron/dt-%d-cid-%c"


def test_allow_lists_default_to_the_configured_prefix(tmp_path):
    proc, config = render(tmp_path, {"dump_env_s3_prefix": PREFIX})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert config["s3"]["allowed_buckets"] == ["dumps-bucket"]
    assert config["s3"]["allowed_prefixes"] == ["s3://dumps-bucket/neuron/"]
    assert "allowed_uids" not in config["uploader"] and "allowed_groups" not in config["uploader"]
    assert "readable_by_owner" not in config["capture"]


def test_no_configured_prefix_means_no_restriction_and_the_old_keys_only(tmp_path):
    proc, config = render(tmp_path, {})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert config["s3"]["allowed_buckets"] == []
    assert "allowed_prefixes" not in config["s3"]
    host_program_accepts(config, tmp_path)  # valid for the host program as it is on this branch


def test_every_new_variable_maps_to_its_key(tmp_path):
    proc, config = render(
        tmp_path,
        {
            "dump_env_s3_prefix": "s3://b-bucket/neuron/%d-%c",  # admitted by the second entry
            "neuron_dump_s3_allowed_prefixes": ["s3://a-bucket/x/", "s3://b-bucket/"],
            "neuron_dump_uploader_allowed_uids": [1000, "1001"],
            "neuron_dump_uploader_allowed_groups": ["neuron-users", 2000],
            "neuron_dump_capture_readable_by_owner": True,
        },
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert config["s3"]["allowed_prefixes"] == ["s3://a-bucket/x/", "s3://b-bucket/"]
    assert config["s3"]["allowed_buckets"] == ["a-bucket", "b-bucket"]  # follow the prefixes
    assert config["uploader"]["allowed_uids"] == [1000, 1001]
    assert config["uploader"]["allowed_groups"] == ["neuron-users", 2000]
    assert config["capture"]["readable_by_owner"] is True


def test_an_explicit_empty_list_lifts_the_restriction(tmp_path):
    proc, config = render(
        tmp_path,
        {"dump_env_s3_prefix": PREFIX, "neuron_dump_s3_allowed_prefixes": [], "neuron_dump_s3_allowed_buckets": []},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert config["s3"]["allowed_buckets"] == [] and "allowed_prefixes" not in config["s3"]


def test_the_host_program_accepts_what_the_role_renders(tmp_path):
    _proc, config = render(
        tmp_path,
        {
            "dump_env_s3_prefix": PREFIX,
            "neuron_dump_uploader_allowed_uids": [1000],
            "neuron_dump_uploader_allowed_groups": ["neuron-users", 2000],
            "neuron_dump_capture_readable_by_owner": True,
        },
    )
    assert config["s3"]["allowed_prefixes"] == ["s3://dumps-bucket/neuron/"]
    loaded = host_program_accepts(config, tmp_path)
    # the host program compares prefixes on whole key components, so it keeps them without the slash
    assert loaded["s3"]["allowed_prefixes"] == ["s3://dumps-bucket/neuron"]
    assert loaded["uploader"]["allowed_uids"] == [1000] and loaded["capture"]["readable_by_owner"] is True


@pytest.mark.parametrize(
    ("extra_vars", "fragment"),
    [
        ({"neuron_dump_s3_allowed_prefixes": ["s3://b/x/"]}, "must be 3 to 63 characters"),
        ({"neuron_dump_s3_allowed_prefixes": ["gs://bucket/x/"]}, "must start with 's3://'"),
        ({"neuron_dump_s3_allowed_prefixes": ["s3://bucket/%d/"]}, "must be literal"),
        (
            {"neuron_dump_s3_allowed_prefixes": ["s3://bucket/x/"], "neuron_dump_s3_allowed_buckets": ["other"]},
            "bucket bucket of an allowed prefix is not in neuron_dump_s3_allowed_buckets",
        ),
        ({"neuron_dump_s3_allowed_buckets": ["Bad_Bucket"]}, "may contain only lowercase"),
        ({"neuron_dump_s3_allowed_prefixes": "s3://bucket/x/"}, "neuron_dump_s3_allowed_prefixes"),
        ({"neuron_dump_uploader_allowed_uids": [-1]}, "are not: -1"),
        ({"neuron_dump_uploader_allowed_uids": ["root"]}, "neuron_dump_uploader_allowed_uids"),
        ({"neuron_dump_uploader_allowed_groups": ["bad group"]}, "are not: bad group"),
        ({"neuron_dump_capture_readable_by_owner": "maybe"}, "neuron_dump_capture_readable_by_owner"),
        ({"dump_env_s3_prefix": "s3://bucket/with space/%d-%c"}, "invalid S3 prefix"),
        (
            {"dump_env_s3_prefix": PREFIX, "neuron_dump_s3_allowed_prefixes": ["s3://dumps-bucket/other/"]},
            "is outside the uploader's allow-lists",
        ),
    ],
)
def test_bad_variables_fail_with_a_clear_message_before_anything_is_written(tmp_path, extra_vars, fragment):
    proc, config = render(tmp_path, extra_vars)
    assert proc.returncode != 0
    assert config is None  # nothing written
    assert fragment in proc.stdout + proc.stderr, proc.stdout + proc.stderr
