"""A dump from a workload container with no Python reaches S3 through the host's uploader.

Real podman 4.3.1 (root, runc), in a throwaway mount namespace with the CDI spec in an overlay
/etc/cdi as in test_podman_cdi.py. The container's root file system is tests/bed/shell_workload.py's:
dash, mkdir and their libraries only (no Python, no Neuron), a fixture vendor
``/opt/aws/neuron/bin/neuron-dump`` (shell, the image's own hook) and a runtime stand-in (shell,
written from docs/runtime-contract.md section 2); two ranks, two cores each. demo/run.sh runs the
same workload inside a fleet host's own Podman.

The container is started with only the device request (or, second case, with no flag through
the drop-in) plus credentials and an S3 prefix of its own, to prove neither is used. The host
uploader (the bed's CLI, moto S3, the bed's credentials) adopts and uploads the dump.
Not proven here: a real libnrt or vendor neuron-dump (neither exists without Neuron hardware).
"""

import hashlib
import json
import os
import subprocess
import time

import pytest
import shell_workload
from adoption_bed import Area
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import cdi_spec, containers_conf, contract
from ncd_bed import object_sha256
from test_podman_cdi import BED_CONF, merged_conf

pytestmark = [
    pytest.mark.bed("podman", "unshare"),
    pytest.mark.skipif(not os.path.exists("/lib/x86_64-linux-gnu/libc.so.6"), reason="needs an x86_64 Debian host"),
]

ON = {contract.LOCAL_DIR_VAR: contract.DEFAULT_LOCAL_DIR, contract.S3_PREFIX_VAR: "s3://host-bucket/%d-%c"}
DATE, CLUSTER = shell_workload.DATE, shell_workload.CLUSTER
VENDOR = shell_workload.VENDOR


def shell_image(tmp_path):
    """dash as /bin/sh, mkdir, their libraries, the vendor hook and the stand-in; nothing else."""
    return shell_workload.build(tmp_path / "rootfs")


def run_workload(tmp_path, rootfs, area, route, script=None, values=None, image_args=None):
    """The two ranks in one container (or ``script``), started by ``route``: cdi, cdi-hook or dropin.

    ``rootfs``: the shell-only root file system; or ``image_args`` (image and mounts) instead.
    """
    values = ON if values is None else values
    upper, work = tmp_path / "upper", tmp_path / "work"
    for path in (upper, work, upper / "cdi"):
        path.mkdir(exist_ok=True)
    hook_program = {"cdi-hook": area.bed.cli, "cdi-no-program": "/nonexistent/neuron-core-dump"}.get(route)
    spec = cdi_spec.render(values, area.shared, hook_program=hook_program)
    (upper / "cdi" / "neuron-ops.io-core-dump.json").write_bytes(spec)
    conf = os.path.abspath(BED_CONF)
    flags = ["--device", cdi_spec.DEVICE_REQUEST]
    if route == "dropin":
        conf, flags = str(merged_conf(tmp_path, containers_conf.render(ON, area.shared))), []
    flags += ["--env", "AWS_ACCESS_KEY_ID=container-key", "--env", "AWS_SECRET_ACCESS_KEY=container-secret"]
    if route.startswith("cdi"):  # CDI overrides the container's own prefix; the drop-in would not (docs/containers.md)
        flags += ["--env", "%s=s3://tenant-bucket/steal" % contract.S3_PREFIX_VAR]
    script = script or shell_workload.TWO_RANKS
    command = "mount -t overlay overlay -o lowerdir=/etc,upperdir=%s,workdir=%s /etc && exec podman run --rm %s " % (
        upper,
        work,
        " ".join(flags),
    ) + "%s /bin/sh -c '%s'" % (image_args or "--rootfs %s" % rootfs, script)
    env = dict(os.environ, CONTAINERS_CONF=conf)
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", command], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def slot_of(area, route):
    """Where the container's dumps landed: shared, or its own by-id directory (the hook's)."""
    if route != "cdi-hook":
        return area.shared, None
    by_id = os.path.join(area.path, "by-id")
    (container_id,) = [n for n in os.listdir(by_id) if not n.endswith(".json")]
    assert os.listdir(area.shared) == []  # the hook's mount covered the shared one
    return os.path.join(by_id, container_id), container_id


@pytest.mark.parametrize("route", ["cdi", "cdi-hook", "dropin"])
def test_a_no_python_container_dump_is_adopted_and_uploaded_by_the_host(tmp_path, s3bed, moto, route):
    area = Area(s3bed)
    run = run_workload(tmp_path, shell_image(tmp_path), area, route)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("dumped") == 2, run.stdout
    slot, container_id = slot_of(area, route)
    (name,) = os.listdir(slot)
    assert name == "dt-%s-cid-%s" % (DATE, CLUSTER)
    written = {}
    for file_name in os.listdir(os.path.join(slot, name)):
        with open(os.path.join(slot, name, file_name), "rb") as handle:
            written[file_name] = handle.read()
    assert len(written) == 6  # 2 ranks x (2 cores + the runtime log)
    core_files = [data for file_name, data in written.items() if "-nc" in file_name]
    assert all(b"s3-output-prefix=[unset]" in data for data in core_files)  # no prefix: the image's hook cannot upload
    assert all(b"aws-key=[container-key]" in data for data in core_files)  # the container had credentials of its own
    deadline = time.monotonic() + 90
    client = moto.client()
    listed = []
    while time.monotonic() < deadline:
        s3bed.run_cli("upload", check=True)
        listed = [o["Key"] for o in client.list_objects_v2(Bucket=s3bed.bucket).get("Contents", [])]
        if any(k.endswith("-manifest.json") for k in listed):
            break
        time.sleep(2)
    (manifest_key,) = [k for k in listed if k.endswith("-manifest.json")]
    manifest = json.loads(client.get_object(Bucket=s3bed.bucket, Key=manifest_key)["Body"].read())
    assert manifest["origin"]["kind"] == "container"
    if container_id:  # the directory was made for this one container by the host: attribution enforced
        assert manifest["origin"]["container_id"] == container_id
        assert manifest["origin"]["attribution"] == "enforced" and manifest["origin"]["runtime"] == "podman"
        assert manifest["origin"]["hostname"] == container_id[:12]  # podman's default hostname
        assert manifest["origin"]["attribution_id"] == container_id
    else:
        assert manifest["origin"]["attribution"] == "unknown"
    by_name = {item["name"]: item for item in manifest["files"]}
    for file_name, data in written.items():  # byte-identical, at keys below the host's prefix
        key = by_name[file_name]["key"]
        assert key.startswith("host/") and "/containers/%s/" % manifest["origin"]["attribution_id"] in key
        assert object_sha256(client, s3bed.bucket, key) == hashlib.sha256(data).hexdigest()
    puts = moto.app.ops(s3bed.bucket, "PutObject")
    assert puts and all("Credential=testing/" in r["headers"].get("authorization", "") for r in puts)
    assert not [r for r in moto.app.requests if "container-key" in r["headers"].get("authorization", "")]
    assert not [r for r in moto.app.requests if r["bucket"] == "tenant-bucket"]
    # nothing is left for a container to read; a removed container's own directory is gone
    assert (os.listdir(slot) == []) if slot == area.shared else not os.path.exists(slot)


def test_with_the_hook_a_container_sees_only_its_own_directory(tmp_path, s3bed):
    """Rootful root in a second container cannot read or remove the first one's dump."""
    area = Area(s3bed)
    rootfs = shell_image(tmp_path)
    assert run_workload(tmp_path, rootfs, area, "cdi-hook").returncode == 0
    mount = "/var/lib/neuron-core-dump/dumps"
    probe = (
        "for e in %s/*; do echo seen:$e; done; while read -r a b c d m rest; do [ $m = %s ] && echo opts:$rest; done"
        % (
            mount,
            mount,
        )
        + " < /proc/self/mountinfo; true"
    )
    run = run_workload(tmp_path, rootfs, area, "cdi-hook", script=probe)
    assert run.returncode == 0, run.stderr
    assert "seen:%s/*" % mount in run.stdout  # empty: the glob stays unexpanded
    assert "nosuid" in run.stdout and "nodev" in run.stdout and "noexec" in run.stdout
    by_id = os.path.join(area.path, "by-id")
    assert len([n for n in os.listdir(by_id) if n.endswith(".json")]) == 2
    assert sum(len(os.listdir(os.path.join(by_id, n))) for n in os.listdir(by_id) if not n.endswith(".json")) == 1


def test_a_spec_whose_hook_program_is_missing_still_starts_containers(tmp_path, s3bed):
    """The hook runs through /bin/sh and exits 0: a host without the program uses the shared directory."""
    area = Area(s3bed)
    run = run_workload(tmp_path, shell_image(tmp_path), area, "cdi-no-program")
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("dumped") == 2 and os.listdir(area.shared) == ["dt-%s-cid-%s" % (DATE, CLUSTER)]
    assert not os.path.exists(os.path.join(area.path, "by-id"))


def test_a_finished_containers_empty_directory_is_removed(tmp_path, s3bed):
    """After adoption, the slot of a container that podman removed (--rm) goes; the record with it."""
    area = Area(s3bed)
    assert run_workload(tmp_path, shell_image(tmp_path), area, "cdi-hook").returncode == 0
    area.adopt()
    assert len(area.adopted_dirs()) == 1
    area.step(60)
    assert os.listdir(os.path.join(area.path, "by-id")) == []


def test_disabled_spec_container_starts_and_its_failure_leaves_no_dump(tmp_path, s3bed):
    """disable.yml's spec (both variables empty, no mount, no hook): the runtime's gate stays closed."""
    area = Area(s3bed)
    off = {contract.LOCAL_DIR_VAR: "", contract.S3_PREFIX_VAR: ""}
    run = run_workload(tmp_path, shell_image(tmp_path), area, "cdi-hook", values=off)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("no dump") == 2 and "dumped" not in run.stdout
    assert os.listdir(area.shared) == [] and not os.path.exists(os.path.join(area.path, "by-id"))


@pytest.mark.skipif(not os.environ.get("NCD_IMAGE_BOOKWORM", "").startswith("localhost/"), reason="needs the bed image")
def test_a_python_image_running_fake_nrt_is_covered_the_same_way(tmp_path, s3bed, moto):
    """The bed's Debian image (Python 3.11) with the runtime stand-in tests/bed/fake_nrt.py and the
    fixture vendor hook bind-mounted read-only where an image has them (the image has neither)."""
    area = Area(s3bed)
    vendor = tmp_path / "neuron-dump"
    vendor.write_text(VENDOR)
    os.chmod(vendor, 0o755)
    fake_nrt = os.path.join(os.path.dirname(__file__), "..", "..", "bed", "fake_nrt.py")
    image_args = "-v %s:/opt/aws/neuron/bin/neuron-dump:ro -v %s:/usr/local/bin/fake_nrt.py:ro %s" % (
        vendor,
        os.path.abspath(fake_nrt),
        os.environ["NCD_IMAGE_BOOKWORM"],
    )
    script = "python3 /usr/local/bin/fake_nrt.py --ranks 2 --cores 0:0,0:1 --epoch 1764670500; true"
    run = run_workload(tmp_path, None, area, "cdi-hook", script=script, image_args=image_args)
    assert run.returncode == 0, run.stderr
    slot, container_id = slot_of(area, "cdi-hook")
    (name,) = os.listdir(slot)
    assert len(os.listdir(os.path.join(slot, name))) == 6, run.stdout + run.stderr  # 2 ranks x (2 cores + log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not area.adopted_dirs():
        s3bed.run_cli("upload", check=True)
        time.sleep(2)
    s3bed.run_cli("upload", check=True)
    listed = client_keys(moto, s3bed.bucket)
    (manifest_key,) = [k for k in listed if k.endswith("-manifest.json")]
    manifest = json.loads(moto.client().get_object(Bucket=s3bed.bucket, Key=manifest_key)["Body"].read())
    assert manifest["origin"]["container_id"] == container_id and manifest["origin"]["attribution"] == "enforced"
    assert len(manifest["files"]) == 7  # the six files and the origin record


def test_without_adoption_the_container_dump_stays_in_the_area(tmp_path, s3bed, moto):
    """The same workload with adoption off: nothing reaches S3 (the test above depends on adoption)."""
    area = Area(s3bed, enabled=False)
    run = run_workload(tmp_path, shell_image(tmp_path), area, "cdi")
    assert run.returncode == 0, run.stderr
    for _attempt in range(3):
        s3bed.run_cli("upload", check=True)
    assert client_keys(moto, s3bed.bucket) == []
    assert len(os.listdir(area.shared)) == 1


def client_keys(moto, bucket):
    return [o["Key"] for o in moto.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
