"""Real Podman reads the CDI spec and the containers.conf drop-in that core_dump renders.

Podman 4.3 reads CDI specs only from /etc/cdi and /var/run/cdi: it calls
cdi.GetRegistry() without spec directories, and its containers.conf
(containers/common 0.50) has no cdi_spec_dirs key (podman v4.3.1,
libpod/container_internal_common.go). So each podman run happens in a throwaway
mount namespace (unshare -m) whose /etc is an overlay over the real one: the
spec is written into the overlay's upper directory and this machine's /etc is
never touched. Podman settings come from tests/bed/containers.conf via
CONTAINERS_CONF; for the drop-in case a copy of it gets the drop-in's keys
(with CONTAINERS_CONF set, Podman reads no containers.conf.d).

Needs root, podman, unshare and the bed's bookworm image (NCD_IMAGE_BOOKWORM
from .bed/state/bed.env): the ``bed`` marker, tests/conftest.py. The image has no
Neuron runtime: these tests prove what the container gets (environment, mount, writability),
not a dump; the workload-level proof is test_container_dump_to_s3.py. The specs here are rendered
without the per-container hook (hook_program=None): they test the shared directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import tomllib
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import (
    cdi_spec,
    container_area,
    containers_conf,
    contract,
)

LOCAL, S3 = contract.LOCAL_DIR_VAR, contract.S3_PREFIX_VAR
ON = {LOCAL: contract.DEFAULT_LOCAL_DIR, S3: "s3://host-bucket/%d-%c"}
OFF = {LOCAL: "", S3: ""}
BED_CONF = os.path.join(os.path.dirname(__file__), "..", "..", "bed", "containers.conf")
IMAGE = os.environ.get("NCD_IMAGE_BOOKWORM")

pytestmark = pytest.mark.bed("podman", "unshare")

# Inside the container: both variables exactly (unset shows as <unset>), then the mount line.
PROBE = (
    'for v in %s %s; do eval "x=\\${$v-<unset>}"; echo "$v=[$x]"; done; '
    'echo "PATH=[$PATH]"; grep " %s " /proc/self/mountinfo || echo nomount; '
    "touch %s/written-by-container 2>/dev/null && echo wrote || echo nowrite"
) % (LOCAL, S3, container_area.CONTAINER_MOUNT, container_area.CONTAINER_MOUNT)


@pytest.fixture
def area(tmp_path):
    path = tmp_path / "area"
    change = container_area.AreaChange(str(path))
    change.apply()
    return path


def podman_run(tmp_path, args, spec=None, conf=None):
    """podman run in a private mount namespace with the spec in an overlay /etc/cdi."""
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    if spec is not None:
        (upper / "cdi").mkdir(exist_ok=True)
        (upper / "cdi" / "neuron-ops.io-core-dump.json").write_bytes(spec)
    script = (
        "mount -t overlay overlay -o lowerdir=/etc,upperdir=%s,workdir=%s /etc && exec podman run --rm %s %s sh -c '%s'"
        % (upper, work, " ".join(args), IMAGE, PROBE.replace("'", "'\\''"))
    )
    env = dict(os.environ, CONTAINERS_CONF=str(conf or os.path.abspath(BED_CONF)))
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def merged_conf(tmp_path, dropin):
    """The bed's containers.conf with the drop-in's [containers] keys on top (as Podman merges files)."""
    with open(BED_CONF, "rb") as handle:
        conf = tomllib.load(handle)
    conf.setdefault("containers", {}).update(tomllib.loads(dropin.decode()).get("containers", {}))
    lines = []
    for table, keys in conf.items():
        lines.append("[%s]" % table)
        lines.extend("%s = %s" % (key, json.dumps(value)) for key, value in keys.items())
    path = tmp_path / "containers.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_device_request_gives_both_variables_and_the_mount(tmp_path, area):
    spec = cdi_spec.render(ON, str(area / "shared"), hook_program=None)
    run = podman_run(tmp_path, ["--device", cdi_spec.DEVICE_REQUEST], spec=spec)
    assert run.returncode == 0, run.stderr
    assert "%s=[%s]" % (LOCAL, container_area.CONTAINER_LOCAL_DIR) in run.stdout
    assert "%s=[]" % S3 in run.stdout  # empty, never the host's prefix: the host uploads
    assert " %s " % container_area.CONTAINER_MOUNT in run.stdout and "wrote" in run.stdout
    assert (area / "shared" / "written-by-container").is_file()


def test_device_request_overrides_an_s3_prefix_given_to_the_container(tmp_path, area):
    """CDI env edits replace the container's own value (runtime-tools AddMultipleProcessEnv)."""
    spec = cdi_spec.render(ON, str(area / "shared"), hook_program=None)
    run = podman_run(tmp_path, ["--env", "%s=s3://tenant/x" % S3, "--device", cdi_spec.DEVICE_REQUEST], spec=spec)
    assert run.returncode == 0, run.stderr
    assert "%s=[]" % S3 in run.stdout


def test_disabled_spec_still_starts_the_container_with_both_variables_empty(tmp_path, area):
    run = podman_run(
        tmp_path,
        ["--device", cdi_spec.DEVICE_REQUEST],
        spec=cdi_spec.render(OFF, str(area / "shared"), hook_program=None),
    )
    assert run.returncode == 0, run.stderr
    assert "%s=[]" % LOCAL in run.stdout and "%s=[]" % S3 in run.stdout
    assert "nomount" in run.stdout


def test_without_a_spec_the_device_request_fails_clearly(tmp_path):
    """Why state=disabled keeps the spec: without it, podman refuses to create the container."""
    run = podman_run(tmp_path, ["--device", cdi_spec.DEVICE_REQUEST])
    assert run.returncode != 0 and "neuron-ops.io/core-dump=default" in run.stderr


def test_dropin_covers_a_container_started_without_any_flag(tmp_path, area):
    conf = merged_conf(tmp_path, containers_conf.render(ON, str(area / "shared")))
    run = podman_run(tmp_path, [], conf=conf)
    assert run.returncode == 0, run.stderr
    assert "%s=[%s]" % (LOCAL, container_area.CONTAINER_LOCAL_DIR) in run.stdout
    assert "%s=[]" % S3 in run.stdout
    assert "PATH=[%s]" % containers_conf.PODMAN_DEFAULT_ENV[0].split("=", 1)[1] in run.stdout
    assert "wrote" in run.stdout


def test_disabled_dropin_gives_empty_variables_and_no_mount(tmp_path, area):
    conf = merged_conf(tmp_path, containers_conf.render(OFF, str(area / "shared")))
    run = podman_run(tmp_path, [], conf=conf)
    assert run.returncode == 0, run.stderr
    assert "%s=[]" % LOCAL in run.stdout and "nomount" in run.stdout


def run_in(tmp_path, spec, user, script):
    """One container with the device, as ``user``, running ``script``: (rc, stdout, stderr)."""
    upper, work = tmp_path / "upper", tmp_path / "work"
    for path in (upper, work, upper / "cdi"):
        path.mkdir(exist_ok=True)
    (upper / "cdi" / "neuron-ops.io-core-dump.json").write_bytes(spec)
    quoted = script.replace("'", "'\\''")
    command = (
        "mount -t overlay overlay -o lowerdir=/etc,upperdir=%s,workdir=%s /etc && "
        "exec podman run --rm --user %s --device %s %s sh -c '%s'"
        % (upper, work, user, cdi_spec.DEVICE_REQUEST, IMAGE, quoted)
    )
    env = dict(os.environ, CONTAINERS_CONF=os.path.abspath(BED_CONF))
    run = subprocess.run(
        ["unshare", "-m", "sh", "-c", command], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    return run.returncode, run.stdout, run.stderr


def test_what_the_shared_area_does_and_does_not_isolate(tmp_path, area):
    """docs/containers.md, "Security": a non-root container user cannot list the shared area or remove
    another container's dump; a rootful container's root (CAP_DAC_OVERRIDE, CAP_FOWNER) can do both.
    This is why the shared area is for one trust domain per host only."""
    spec = cdi_spec.render(ON, str(area / "shared"), hook_program=None)
    mount = container_area.CONTAINER_MOUNT
    victim = area / "shared" / "dt-20261202-061500-cid-0000000000000000"
    victim.mkdir(mode=0o700)
    (victim / "secret").write_text("another container's dump\n")
    rc, out, err = run_in(
        tmp_path,
        spec,
        "1000:1000",
        "ls %s >/dev/null 2>&1 && echo listed || echo nolist; rm -rf %s/dt-* 2>/dev/null; "
        "mkdir %s/dt-mine && echo created" % (mount, mount, mount),
    )
    assert rc == 0, err
    assert "nolist" in out and "created" in out and (victim / "secret").is_file()
    assert (area / "shared" / "dt-mine").stat().st_uid == 1000
    rc, out, err = run_in(tmp_path, spec, "0:0", "ls %s; cat %s/dt-*/secret" % (mount, mount))
    assert rc == 0, err
    assert "another container's dump" in out  # rootful root reads it: NOT isolated


def shell_only_rootfs(tmp_path):
    """A root file system with nothing but dash and its C library: no Python, no coreutils, no Neuron."""
    root = tmp_path / "rootfs"
    for directory in ("bin", "lib/x86_64-linux-gnu", "lib64", "proc", "sys", "dev", "etc", "tmp"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/dash", root / "bin" / "sh")
    for library in ("/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"):
        shutil.copy2(library, root / library.lstrip("/"))
    os.symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", root / "lib64" / "ld-linux-x86-64.so.2")
    return root


@pytest.mark.skipif(not os.path.exists("/lib/x86_64-linux-gnu/libc.so.6"), reason="needs an x86_64 Debian host")
def test_an_image_without_python_gets_the_settings_and_the_mount(tmp_path, area):
    rootfs = shell_only_rootfs(tmp_path)
    upper, work = tmp_path / "upper", tmp_path / "work"
    for path in (upper, work, upper / "cdi"):
        path.mkdir(exist_ok=True)
    (upper / "cdi" / "neuron-ops.io-core-dump.json").write_bytes(
        cdi_spec.render(ON, str(area / "shared"), hook_program=None)
    )
    # Shell builtins only: print both variables, find the mount, write into it.
    probe = (
        'echo "L=[$%s] S=[${%s-unset}]"; while read -r a b c d mnt rest; do [ "$mnt" = %s ] && echo mounted; '
        "done < /proc/self/mountinfo; echo dump > %s/from-shell-only-image && echo wrote"
        % (LOCAL, S3, container_area.CONTAINER_MOUNT, container_area.CONTAINER_MOUNT)
    )
    command = (
        "mount -t overlay overlay -o lowerdir=/etc,upperdir=%s,workdir=%s /etc && "
        "exec podman run --rm --device %s --rootfs %s /bin/sh -c '%s'"
        % (upper, work, cdi_spec.DEVICE_REQUEST, rootfs, probe.replace("'", "'\\''"))
    )
    env = dict(os.environ, CONTAINERS_CONF=os.path.abspath(BED_CONF))
    run = subprocess.run(
        ["unshare", "-m", "sh", "-c", command], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr
    assert "L=[%s] S=[]" % container_area.CONTAINER_LOCAL_DIR in run.stdout
    assert "mounted" in run.stdout and "wrote" in run.stdout
    assert (area / "shared" / "from-shell-only-image").read_text() == "dump\n"
    assert not list(rootfs.rglob("python*"))
