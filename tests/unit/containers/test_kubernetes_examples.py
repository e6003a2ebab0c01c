"""Every file under docs/examples/ parses, and the Kubernetes examples give what the host side expects.

No Kubernetes API server or Kyverno is available here, so this is as far as the
examples are tested: YAML/TOML parse; the structure each kind needs; the values
match the product's constants (container_area, contract); the Kyverno
preconditions are evaluated with the jmespath library on sample pods and the
foreach patches are applied by a strategic-merge stand-in (merge by name), so
the mutated pod is compared with the hand-written pod example. Kyverno's own
JMESPath adds functions; these expressions use only standard ones.
"""

from __future__ import annotations

import copy
import glob
import os

import jmespath
import pytest
import tomllib
import yaml
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import container_area, containerd_config, contract

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "examples")
K8S = os.path.join(EXAMPLES, "kubernetes")
SHARED = "/var/lib/neuron-core-dump/containers/shared"  # core_dump's default container_dump_dir + /shared
WANTED_ENV = [
    {"name": contract.LOCAL_DIR_VAR, "value": container_area.CONTAINER_LOCAL_DIR},
    {"name": contract.S3_PREFIX_VAR, "value": ""},
]


def load(name):
    with open(os.path.join(K8S, name)) as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(EXAMPLES, "**", "*.*"), recursive=True)))
def test_every_example_parses(path):
    with open(path, "rb") as handle:
        data = handle.read()
    if path.endswith((".yaml", ".yml")):
        documents = list(yaml.safe_load_all(data))
        assert documents and all(isinstance(d, dict) and d.get("apiVersion") and d.get("kind") for d in documents)
    elif path.endswith(".toml"):
        assert tomllib.loads(data.decode())
    else:
        pytest.fail("no check for %s; add one" % path)


def test_pod_example_mounts_the_area_and_sets_both_variables():
    pod = load("pod-core-dump.yaml")
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    (container,) = pod["spec"]["containers"]
    assert container["env"] == WANTED_ENV
    (volume,) = pod["spec"]["volumes"]
    assert volume["hostPath"] == {"path": SHARED, "type": "DirectoryOrCreate"}
    assert container["volumeMounts"] == [{"name": volume["name"], "mountPath": container_area.CONTAINER_MOUNT}]
    assert set(container["resources"]["limits"]) <= {"aws.amazon.com/neuron", "aws.amazon.com/neuroncore"}


def expression(key):
    text = " ".join(key.split()).strip()
    assert text.startswith("{{") and text.endswith("}}")
    return text[2:-2].strip()


def merge_by_name(items, patches):
    out = copy.deepcopy(items or [])
    for patch in patches:
        for item in out:
            if item.get("name") == patch.get("name"):
                item.update(patch)
                break
        else:
            out.append(copy.deepcopy(patch))
    return out


def mutate(policy, pod):
    """Kyverno's two rules, as far as a stand-in can: preconditions by jmespath, merges by name."""
    pod = copy.deepcopy(pod)
    volume_rule, settings_rule = policy["spec"]["rules"]
    request = {"request": {"object": pod}}
    (condition,) = volume_rule["preconditions"]["all"]
    assert condition["operator"] == "GreaterThan"
    if jmespath.search(expression(condition["key"]), request) > condition["value"]:
        pod["spec"]["volumes"] = merge_by_name(
            pod["spec"].get("volumes"), volume_rule["mutate"]["patchStrategicMerge"]["spec"]["volumes"]
        )
    (foreach,) = settings_rule["mutate"]["foreach"]
    assert foreach["list"] == "request.object.spec.containers"
    (each,) = foreach["preconditions"]["any"]
    assert each["operator"] == "NotEquals"
    for container in pod["spec"]["containers"]:
        if jmespath.search(expression(each["key"]), {"element": container}) == each["value"]:
            continue
        (patch,) = foreach["patchStrategicMerge"]["spec"]["containers"]
        assert patch["name"] == "{{ element.name }}"
        container["env"] = merge_by_name(container.get("env"), patch["env"])
        container["volumeMounts"] = merge_by_name(container.get("volumeMounts"), patch["volumeMounts"])
    return pod


def pod_with(*containers):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": list(containers)}}


def test_kyverno_policy_mutates_a_neuron_pod_into_the_pod_example():
    policy = load("kyverno-core-dump.yaml")
    assert policy["apiVersion"] == "kyverno.io/v1" and policy["kind"] == "ClusterPolicy"
    example = load("pod-core-dump.yaml")
    bare = copy.deepcopy(example)
    del bare["spec"]["volumes"]
    container = bare["spec"]["containers"][0]
    del container["volumeMounts"]
    container["env"] = [{"name": contract.S3_PREFIX_VAR, "value": "s3://tenant-bucket/x"}]  # overridden to ""
    mutated = mutate(policy, bare)
    assert mutated["spec"]["volumes"] == example["spec"]["volumes"]
    got = mutated["spec"]["containers"][0]
    assert sorted(got["env"], key=lambda e: e["name"]) == sorted(WANTED_ENV, key=lambda e: e["name"])
    assert got["volumeMounts"] == example["spec"]["containers"][0]["volumeMounts"]


def test_kyverno_policy_leaves_other_pods_and_containers_alone():
    policy = load("kyverno-core-dump.yaml")
    plain = pod_with({"name": "web", "image": "nginx"})
    assert mutate(policy, plain) == plain
    sidecar = {"name": "log", "image": "busybox"}
    cores = {"name": "infer", "image": "x", "resources": {"limits": {"aws.amazon.com/neuroncore": "2"}}}
    mutated = mutate(policy, pod_with(sidecar, cores))
    assert mutated["spec"]["containers"][0] == sidecar
    assert mutated["spec"]["containers"][1]["env"] == WANTED_ENV
    assert [v["name"] for v in mutated["spec"]["volumes"]] == ["neuron-core-dump"]


def test_containerd_example_enables_cdi_in_the_cri_plugin():
    with open(os.path.join(K8S, "containerd-1.7-enable-cdi.toml"), "rb") as handle:
        config = tomllib.load(handle)
    assert config == {"version": 2, "plugins": {"io.containerd.grpc.v1.cri": {"enable_cdi": True}}}
    # The same statements as the file the containerd_cdi module writes on a host without one.
    with open(os.path.join(K8S, "containerd-1.7-enable-cdi.toml"), encoding="utf-8") as handle:
        example = [line for line in handle.read().splitlines() if not line.startswith("#")]
    written = [line for line in containerd_config.NEW_FILE.splitlines() if not line.startswith("#")]
    assert example == written
