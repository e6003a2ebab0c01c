"""Build and run the test bed: fixture packages, signed repositories, HTTP server, moto.

Everything is real except Neuron hardware. Artefacts live under ``.bed/`` (gitignored):

``.bed/www/neuron/apt``      signed apt repository of fixture ``aws-neuronx-tools`` packages,
                             laid out like apt.repos.neuron.amazonaws.com (dists/<suite>/main)
``.bed/www/neuron/wrong-key`` an unrelated public key, to prove a wrongly signed repo is refused
``.bed/www/debian/<suite>``  a small signed mirror of the OS packages the roles need
``.bed/www/keys/``           the bed's archive key (what a cloud image's keyring would hold)
``.bed/state/bed.env``       ports and pids of the running servers (``up``/``down``)

usage: python3 tests/bed/bedctl.py build | up | down | link
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
BED = os.path.join(REPO_ROOT, ".bed")
WWW = os.path.join(BED, "www")
STATE = os.path.join(BED, "state")
GNUPG = os.path.join(BED, "gnupg")
FIXTURE_BIN = os.path.join(HERE, "fixtures", "aws-neuronx-tools", "bin")

SUITES = ("bookworm", "trixie")
NEURON_TOOLS_VERSIONS = ("2.30.10.0", "2.32.28.0")
# What the roles may install from the OS, served by the bed's mirror (the hosts are offline).
OS_MIRROR_PACKAGES = ("python3-apt", "python3-boto3", "gnupg", "sudo")
BED_KEY_UID = "neuron_ops core_dump test bed <bed@localhost>"
WRONG_KEY_UID = "unrelated key <wrong@localhost>"
ENV = dict(os.environ, CONTAINERS_CONF=os.environ.get("CONTAINERS_CONF", os.path.join(HERE, "containers.conf")))


def log(msg: str) -> None:
    print("[bed] " + msg, file=sys.stderr, flush=True)


def run(argv, **kwargs):
    return subprocess.run(argv, check=True, env=ENV, **kwargs)


def gpg(*args: str, home: str = GNUPG, **kwargs):
    return run(["gpg", "--homedir", home, "--batch", "--quiet", "--pinentry-mode", "loopback", *args], **kwargs)


def ensure_key(home: str, uid: str) -> None:
    """A throw-away ed25519 signing key, created once per checkout."""
    os.makedirs(home, mode=0o700, exist_ok=True)
    listed = subprocess.run(
        ["gpg", "--homedir", home, "--batch", "--list-keys", uid], capture_output=True, check=False, env=ENV
    )
    if listed.returncode != 0:
        gpg("--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never", home=home)


def export_key(home: str, uid: str, path: str, armor: bool) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        gpg(*(["--armor"] if armor else []), "--export", uid, home=home, stdout=out)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_fixture_deb(version: str, out_dir: str) -> str:
    """aws-neuronx-tools laid out like the real package; @VERSION@ marks each file's version."""
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    # Rebuilt every time (about a second): the fixtures change with the tests.
    deb = os.path.join(out_dir, "aws-neuronx-tools_%s_%s.deb" % (version, arch))
    root = os.path.join(BED, "build", "aws-neuronx-tools-" + version)
    shutil.rmtree(root, ignore_errors=True)
    bin_dir = os.path.join(root, "opt", "aws", "neuron", "bin")
    os.makedirs(bin_dir)
    for name in sorted(os.listdir(FIXTURE_BIN)):
        with open(os.path.join(FIXTURE_BIN, name), encoding="utf-8") as src:
            text = src.read().replace("@VERSION@", version)
        target = os.path.join(bin_dir, name)
        with open(target, "w", encoding="utf-8") as dst:
            dst.write(text)
        os.chmod(target, 0o755)
    os.makedirs(os.path.join(root, "DEBIAN"))
    control = (
        "Package: aws-neuronx-tools\nVersion: %s\nArchitecture: %s\nMaintainer: test bed <bed@localhost>\n"
        "Section: misc\nPriority: optional\n"
        "Description: Neuron system tools (test-bed fixture)\n fixture of neuron-dump, neuron-ls, neuron-top\n"
    ) % (version, arch)
    with open(os.path.join(root, "DEBIAN", "control"), "w", encoding="utf-8") as handle:
        handle.write(control)
    os.makedirs(out_dir, exist_ok=True)
    run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, deb], stdout=subprocess.DEVNULL)
    return deb


def write_packages_index(repo_root: str, pool_rel: str, index_dir: str) -> None:
    os.makedirs(index_dir, exist_ok=True)
    scanned = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", pool_rel, "/dev/null"],
        cwd=repo_root,
        capture_output=True,
        check=True,
    ).stdout
    with open(os.path.join(index_dir, "Packages"), "wb") as handle:
        handle.write(scanned)
    with gzip.GzipFile(os.path.join(index_dir, "Packages.gz"), "wb", mtime=0) as handle:
        handle.write(scanned)


def sign_release(dist_dir: str, suite: str, origin: str, files: list) -> None:
    """Write Release (header + SHA256 lines) and sign it as InRelease and Release.gpg."""
    lines = [
        "Origin: " + origin,
        "Label: " + origin,
        "Suite: " + suite,
        "Codename: " + suite,
        "Date: " + time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime()),
        "Architectures: amd64 arm64 all",
        "Components: main",
        "SHA256:",
    ]
    for rel in files:
        path = os.path.join(dist_dir, rel)
        lines.append(" %s %d %s" % (sha256_file(path), os.path.getsize(path), rel))
    release = os.path.join(dist_dir, "Release")
    with open(release, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    for name in ("InRelease", "Release.gpg"):
        if os.path.exists(os.path.join(dist_dir, name)):
            os.unlink(os.path.join(dist_dir, name))
    gpg("--local-user", BED_KEY_UID, "--clearsign", "-o", os.path.join(dist_dir, "InRelease"), release)
    gpg("--local-user", BED_KEY_UID, "--detach-sign", "--armor", "-o", os.path.join(dist_dir, "Release.gpg"), release)


def build_neuron_repo() -> None:
    repo = os.path.join(WWW, "neuron", "apt")
    pool = os.path.join(repo, "pool", "main", "a", "aws-neuronx-tools")
    for version in NEURON_TOOLS_VERSIONS:
        build_fixture_deb(version, pool)
    for suite in SUITES:
        dist = os.path.join(repo, "dists", suite)
        rel = os.path.join("main", "binary-amd64")
        write_packages_index(repo, "pool", os.path.join(dist, rel))
        sign_release(dist, suite, "Neuron fixture", [os.path.join(rel, "Packages"), os.path.join(rel, "Packages.gz")])
    export_key(GNUPG, BED_KEY_UID, os.path.join(repo, "GPG-PUB-KEY-AMAZON-AWS-NEURON.PUB"), armor=True)
    wrong_home = os.path.join(BED, "gnupg-wrong")
    ensure_key(wrong_home, WRONG_KEY_UID)
    export_key(
        wrong_home,
        WRONG_KEY_UID,
        os.path.join(WWW, "neuron", "wrong-key", "GPG-PUB-KEY-AMAZON-AWS-NEURON.PUB"),
        armor=True,
    )


def image_for(suite: str) -> str:
    out = subprocess.run(
        [os.path.join(HERE, "build-image.sh"), suite],
        capture_output=False,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        env=ENV,
    )
    return out.stdout.strip().splitlines()[-1]


def build_os_mirror(suite: str, image: str) -> None:
    """Download the OS packages the roles need (and their dependencies) once, into a flat repo.

    The download runs in a throw-away container of the same image, with the real Debian
    mirror configured only for that run, so the dependency closure fits the test hosts.
    """
    mirror = os.path.join(WWW, "debian", suite)
    stamp_value = hashlib.sha256((image + " ".join(OS_MIRROR_PACKAGES)).encode()).hexdigest()
    stamp = os.path.join(mirror, ".recipe")
    if os.path.exists(stamp):
        with open(stamp, encoding="utf-8") as handle:
            if handle.read() == stamp_value:
                return
    shutil.rmtree(mirror, ignore_errors=True)
    os.makedirs(os.path.join(mirror, "pool"))
    upstream = os.environ.get("NCD_BED_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    script = (
        "set -e; echo 'deb %s %s main' > /etc/apt/sources.list; apt-get -qq update; "
        "apt-get -qq install --download-only -y --no-install-recommends %s >/dev/null; "
        "cp /var/cache/apt/archives/*.deb /out/"
    ) % (upstream, suite, " ".join(OS_MIRROR_PACKAGES))
    run(
        [
            "podman",
            "run",
            "--rm",
            "--network",
            "host",
            "-v",
            os.path.join(mirror, "pool") + ":/out",
            image,
            "sh",
            "-c",
            script,
        ]
    )
    write_packages_index(mirror, "pool", mirror)
    sign_release(mirror, suite, "Debian bed mirror", ["Packages", "Packages.gz"])
    with open(stamp, "w", encoding="utf-8") as handle:
        handle.write(stamp_value)


def link_collection() -> None:
    """ansible-core finds the checkout as neuron_ops.core_dump through this symlink."""
    namespace_dir = os.path.join(BED, "collections", "ansible_collections", "neuron_ops")
    os.makedirs(namespace_dir, exist_ok=True)
    link = os.path.join(namespace_dir, "core_dump")
    if not os.path.islink(link):
        os.symlink(REPO_ROOT, link)


def build() -> dict:
    link_collection()
    ensure_key(GNUPG, BED_KEY_UID)
    build_neuron_repo()
    export_key(GNUPG, BED_KEY_UID, os.path.join(WWW, "keys", "bed-archive.gpg"), armor=False)
    images = {}
    for suite in SUITES:
        images[suite] = image_for(suite)
        build_os_mirror(suite, images[suite])
    os.makedirs(STATE, exist_ok=True)
    with open(os.path.join(STATE, "images.json"), "w", encoding="utf-8") as handle:
        json.dump(images, handle)
    log("images: " + ", ".join(images.values()))
    return images


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def spawn(argv, log_name: str) -> int:
    os.makedirs(STATE, exist_ok=True)
    with open(os.path.join(STATE, log_name), "ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return proc.pid


def up() -> None:
    down(quiet=True)
    with open(os.path.join(STATE, "images.json"), encoding="utf-8") as handle:
        images = json.load(handle)
    http_port, s3_port = free_port(), free_port()
    http_pid = spawn(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", WWW, str(http_port)], "http.log"
    )
    moto = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or "moto_server"
    s3_pid = spawn([moto, "-H", "127.0.0.1", "-p", str(s3_port)], "moto.log")
    env = {
        "NCD_BED_HTTP": "http://127.0.0.1:%d" % http_port,
        "NCD_BED_S3": "http://127.0.0.1:%d" % s3_port,
        "NCD_BED_WWW": WWW,
        "NCD_IMAGE_BOOKWORM": images["bookworm"],
        "NCD_IMAGE_TRIXIE": images["trixie"],
        "NCD_BED_PIDS": "%d %d" % (http_pid, s3_pid),
    }
    with open(os.path.join(STATE, "bed.env"), "w", encoding="utf-8") as handle:
        handle.writelines("export %s='%s'\n" % item for item in sorted(env.items()))
    wait_http(env["NCD_BED_HTTP"] + "/neuron/apt/GPG-PUB-KEY-AMAZON-AWS-NEURON.PUB")
    wait_http(env["NCD_BED_S3"] + "/moto-api/")
    log("up: http %s, s3 %s" % (env["NCD_BED_HTTP"], env["NCD_BED_S3"]))


def down(quiet: bool = False) -> None:
    env_file = os.path.join(STATE, "bed.env")
    if not os.path.exists(env_file):
        return
    with open(env_file, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("export NCD_BED_PIDS="):
                for pid in line.split("=", 1)[1].strip().strip("'").split():
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(int(pid), signal.SIGTERM)
    os.unlink(env_file)
    if not quiet:
        log("down")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("build", "up", "down", "link"))
    args = parser.parse_args()
    {"build": build, "up": up, "down": down, "link": link_collection}[args.command]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
