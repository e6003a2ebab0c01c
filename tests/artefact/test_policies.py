"""The JSON and YAML policies and configurations shipped in docs/policies/ (and the YAML in the docs).

Parsed and checked for structure and consistent placeholders. Not evaluated: IAM, KMS and
SSM cannot be emulated faithfully here (moto accepts nearly any policy), so a policy that
parses is not proven to grant what docs/s3.md says; the statements were written from the
API calls the uploader makes (roles/neuron_dump/files/neuron_core_dump/s3.py).
"""

import json
import os
import re

import pytest
import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POLICIES = os.path.join(REPO_ROOT, "docs", "policies")
IAM_DOCUMENTS = [
    "bucket-policy.json",
    "uploader-instance-role.json",
    "kms-key-policy.json",
    "ssm-controller.json",
    "sns-topic-policy.json",
]
ACTION = re.compile(r"^(s3|kms|ssm|ec2|sns|\*):([A-Za-z*]+)$")
ACCOUNT = "111122223333"
BUCKET = "example-neuron-dumps"


def load(name):
    with open(os.path.join(POLICIES, name), encoding="utf-8") as handle:
        return json.load(handle)


def as_list(value):
    return value if isinstance(value, list) else [value]


def test_every_file_is_listed_here():
    assert sorted(os.listdir(POLICIES)) == sorted(
        [*IAM_DOCUMENTS, "s3-notification.json", "eventbridge-rule.json", "ssm-state-manager-association.json"]
    )


@pytest.mark.parametrize("name", IAM_DOCUMENTS)
def test_iam_policy_grammar(name):
    policy = load(name)
    assert set(policy) == {"Version", "Statement"} and policy["Version"] == "2012-10-17"
    sids = [statement["Sid"] for statement in policy["Statement"]]
    assert len(sids) == len(set(sids)), "duplicate Sid"
    resource_based = name in ("bucket-policy.json", "kms-key-policy.json", "sns-topic-policy.json")
    for statement in policy["Statement"]:
        assert statement["Effect"] in ("Allow", "Deny")
        assert ("Principal" in statement) == resource_based, statement["Sid"]
        assert ("Resource" in statement) != ("NotResource" in statement), statement["Sid"]
        for action in as_list(statement["Action"]):
            assert ACTION.match(action), action
        for resource in as_list(statement.get("Resource", statement.get("NotResource"))):
            assert resource == "*" or resource.startswith("arn:aws:"), resource
        for operator, conditions in statement.get("Condition", {}).items():
            assert re.match(r"^[A-Za-z]+$", operator) and isinstance(conditions, dict)


def test_placeholders_are_consistent():
    text = json.dumps([load(name) for name in sorted(os.listdir(POLICIES))])
    accounts = set(re.findall(r"arn:aws:[a-z0-9-]+:[a-z0-9-]*:([0-9]{12}):", text))
    assert accounts == {ACCOUNT}, accounts
    buckets = set(re.findall(r"arn:aws:s3:::([a-z0-9.-]+)", text))
    assert buckets == {BUCKET, "example-ansible-ssm-transfer"}, buckets


def test_uploader_role_covers_the_calls_the_uploader_makes():
    granted = {a for s in load("uploader-instance-role.json")["Statement"] for a in as_list(s["Action"])}
    # PutObject covers CreateMultipartUpload/UploadPart/CompleteMultipartUpload; GetObject covers HeadObject.
    needed = {"s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}
    assert needed | {"s3:ListBucket", "kms:GenerateDataKey", "kms:Decrypt"} <= granted
    assert "s3:DeleteObject" not in {
        a
        for s in load("uploader-instance-role.json")["Statement"]
        if "selftest" not in str(s["Resource"])
        for a in as_list(s["Action"])
    }


def test_alerting_matches_manifests_by_suffix():
    notification = load("s3-notification.json")
    (topic,) = notification["TopicConfigurations"]
    rules = {rule["Name"]: rule["Value"] for rule in topic["Filter"]["Key"]["FilterRules"]}
    assert rules["suffix"] == "-manifest.json" and topic["Events"] == ["s3:ObjectCreated:*"]
    assert "EventBridgeConfiguration" in notification
    pattern = load("eventbridge-rule.json")
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    (key,) = pattern["detail"]["object"]["key"]
    assert key["wildcard"].endswith("*-manifest.json")


def test_state_manager_association_runs_the_playbook():
    association = load("ssm-state-manager-association.json")
    assert association["Name"] == "AWS-ApplyAnsiblePlaybooks"
    parameters = association["Parameters"]
    assert all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in parameters.values())
    assert parameters["PlaybookFile"] == ["local.yml"]
    assert json.loads(parameters["SourceInfo"][0])["path"].startswith("https://")


@pytest.mark.parametrize("doc", ["fleet.md", "operations.md"])
def test_yaml_examples_in_the_docs_parse(doc):
    with open(os.path.join(REPO_ROOT, "docs", doc), encoding="utf-8") as handle:
        blocks = re.findall(r"```yaml\n(.*?)```", handle.read(), re.S)
    assert blocks
    for block in blocks:
        yaml.safe_load(block)


@pytest.mark.parametrize("doc", ["README.md", *("docs/" + n for n in os.listdir(os.path.join(REPO_ROOT, "docs")))])
def test_links_resolve(doc):
    if not doc.endswith(".md"):
        return
    with open(os.path.join(REPO_ROOT, doc), encoding="utf-8") as handle:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", handle.read()):
            if not target.startswith("http"):
                assert os.path.exists(os.path.join(REPO_ROOT, os.path.dirname(doc), target)), target
