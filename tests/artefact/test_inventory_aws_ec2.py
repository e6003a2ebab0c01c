"""inventory/aws_ec2.yml against a real EC2 API: moto in server mode, driven by boto3.

Mocked, because it cannot exist here: AWS itself (moto answers DescribeInstances like EC2,
but matches ``instance-type`` filters exactly, which is why the ``neuron`` group is computed
client side) and SSM sessions (the ``inventory/ssm/`` variables are rendered, never used to
connect: no Session Manager endpoint or agent can run here).
"""

import json
import os
import shutil
import subprocess

import boto3
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INVENTORY = os.path.join(REPO_ROOT, "inventory")
NEURON = ["trn1.32xlarge", "trn2.48xlarge", "inf2.xlarge", "inf1.6xlarge", "trn1n.32xlarge", "trn2u.48xlarge"]
OTHER = ["m5.large"]
REGION = "us-east-1"
SSM_VARS = "msg={{ [ansible_connection, ansible_aws_ssm_instance_id, ansible_aws_ssm_region, ansible_become_user] }}"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module")
def fleet(moto_ec2):
    """Instance id by instance type, plus the id of a stopped trn1 and of one in a second region."""
    ec2 = boto3.client("ec2", endpoint_url=moto_ec2, region_name=REGION, **lower(CREDENTIALS))
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]

    def launch(instance_type, client=ec2, image_id=image):
        reply = client.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType=instance_type)
        return reply["Instances"][0]["InstanceId"]

    ids = {instance_type: launch(instance_type) for instance_type in NEURON + OTHER}
    stopped = launch("trn1.2xlarge")
    ec2.stop_instances(InstanceIds=[stopped])
    west = boto3.client("ec2", endpoint_url=moto_ec2, region_name="us-west-2", **lower(CREDENTIALS))
    west_image = west.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return {"ids": ids, "stopped": stopped, "west": launch("trn2.48xlarge", west, west_image), "url": moto_ec2}


def lower(env):
    return {key.lower(): value for key, value in env.items()}


def inventory(fleet, source):
    env = dict(os.environ, AWS_URL=fleet["url"], **CREDENTIALS)
    env.pop("AWS_PROFILE", None)
    result = subprocess.run(
        ["ansible-inventory", "-i", str(source), "--list"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Failed to parse" not in result.stderr, result.stderr
    return json.loads(result.stdout)


def plain(value):
    """ansible-inventory --list marks values it computed as unsafe: {"__ansible_unsafe": value}."""
    return value.get("__ansible_unsafe", value) if isinstance(value, dict) else value


def members(listing, group):
    return set(listing.get(group, {}).get("hosts", []))


def test_neuron_hosts_are_grouped_by_prefix(fleet):
    listing = inventory(fleet, os.path.join(INVENTORY, "aws_ec2.yml"))
    ids = fleet["ids"]
    assert members(listing, "neuron") == {ids[t] for t in NEURON} | {fleet["west"]}
    assert ids["m5.large"] not in members(listing, "neuron")
    assert members(listing, "family_trn1") == {ids["trn1.32xlarge"]}
    assert members(listing, "family_trn1n") == {ids["trn1n.32xlarge"]}
    assert members(listing, "family_trn2u") == {ids["trn2u.48xlarge"]}
    assert members(listing, "family_inf1") == {ids["inf1.6xlarge"]}
    assert members(listing, "instance_type_trn2_48xlarge") == {ids["trn2.48xlarge"], fleet["west"]}
    assert members(listing, "instance_type_inf2_xlarge") == {ids["inf2.xlarge"]}
    assert members(listing, "region_us_east_1") == set(ids.values())
    host = listing["_meta"]["hostvars"][ids["trn1.32xlarge"]]
    assert plain(host["neuron_ec2_family"]) == "trn1" and plain(host["neuron_ec2_region"]) == REGION
    assert plain(host["ansible_host"]) == plain(host["private_ip_address"])


def test_only_running_instances_are_listed(fleet):
    listing = inventory(fleet, os.path.join(INVENTORY, "aws_ec2.yml"))
    assert fleet["stopped"] not in listing["_meta"]["hostvars"]
    assert fleet["stopped"] not in members(listing, "neuron")


def test_every_listed_region_is_read_and_the_list_is_the_switch(fleet, tmp_path):
    listing = inventory(fleet, os.path.join(INVENTORY, "aws_ec2.yml"))
    assert fleet["west"] in members(listing, "neuron")
    assert members(listing, "region_us_west_2") == {fleet["west"]}
    (tmp_path / "aws_ec2.yml").write_text(
        edited("regions:\n  - us-east-1\n  - us-east-2\n  - us-west-2\n", "regions:\n  - us-west-2\n")
    )
    assert members(inventory(fleet, tmp_path / "aws_ec2.yml"), "neuron") == {fleet["west"]}


def edited(old, new):
    """inventory/aws_ec2.yml with one documented switch flipped."""
    with open(os.path.join(INVENTORY, "aws_ec2.yml"), encoding="utf-8") as handle:
        text = handle.read()
    assert old in text, "the switch documented in inventory/aws_ec2.yml is gone: %r" % old
    return text.replace(old, new)


def test_hosts_can_be_named_by_private_dns(fleet, tmp_path):
    (tmp_path / "aws_ec2.yml").write_text(edited("  - instance-id\n  - private-dns-name\n", "  - private-dns-name\n"))
    listing = inventory(fleet, tmp_path / "aws_ec2.yml")
    names = members(listing, "neuron")
    assert len(names) == len(NEURON) + 1
    assert all(name.startswith("ip-") and name.endswith(".internal") for name in names), names


def test_ssm_variables_render(fleet, tmp_path):
    """The SSM directory inventory: the variables aws_ssm reads (no session is opened)."""
    shutil.copytree(os.path.join(INVENTORY, "ssm"), tmp_path / "ssm", symlinks=False)
    listing = inventory(fleet, tmp_path / "ssm")
    host_id = fleet["ids"]["inf2.xlarge"]
    env = dict(os.environ, AWS_URL=fleet["url"], **CREDENTIALS)
    result = subprocess.run(
        [
            "ansible",
            "-i",
            str(tmp_path / "ssm"),
            host_id,
            "-m",
            "ansible.builtin.debug",
            "-a",
            "msg={{ [ansible_connection, ansible_aws_ssm_instance_id, ansible_aws_ssm_region, ansible_become_user] }}",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"amazon.aws.aws_ssm"' in result.stdout and '"%s"' % host_id in result.stdout, result.stdout
    assert '"%s"' % REGION in result.stdout and '"root"' in result.stdout
    assert listing["_meta"]["hostvars"][host_id]["ansible_aws_ssm_bucket_name"]
    assert "ansible_user" not in listing["_meta"]["hostvars"][host_id]
