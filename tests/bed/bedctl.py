"""Build and run the test bed: fixture packages, signed repositories, HTTP server, moto.

Everything is real except Neuron hardware. Artefacts live under ``.bed/`` (gitignored):

``.bed/www/neuron/apt``      signed apt repository of fixture ``aws-neuronx-tools`` packages,
                             laid out like apt.repos.neuron.amazonaws.com (dists/<suite>/main)
``.bed/www/neuron/wrong-key`` an unrelated public key, to prove a wrongly signed repo is refused
``.bed/www/neuron/yum``      signed rpm repository of the same fixture packages (rpms and repomd.xml
                             signed), laid out like yum.repos.neuron.amazonaws.com (flat, key at the top)
``.bed/www/neuron/yum-other-key`` the same rpms and metadata signed by the unrelated key
``.bed/www/debian/<suite>``  a small signed mirror of the OS packages the roles need
``.bed/www/amzn/2023``       signed rpm repository of what the roles install on an AL2023 host
                             (python3-boto3, the dnf versionlock and post-transaction-actions plugins),
                             repackaged from Debian 12's debs: the al2023 image runs Debian 12's dnf
``.bed/www/keys/``           the bed's archive key (what a cloud image's keyring would hold) and
                             the AL2023 OS repository's key (al2023-os.asc)
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
import platform
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
# The AL2023 OS repository's key: not the bed's (Neuron's) key, as on a real host, so the rpm
# database never holds the Neuron key unless neuron_tools imported it.
AL2023_OS_KEY_UID = "AL2023 OS repository stand-in <al2023@localhost>"
# The RPM family (build-image.sh al2023). What AL2023 would install from its own repository,
# served as signed rpms: AL2023 package name -> (version, Debian debs carrying the files,
# requires). The files are Debian 12's, the version of python3-boto3 the uploader's floor.
AL2023_TARGET = "al2023"
AL2023_OS_RPMS = {
    "python3-boto3": ("1.26.27", ("python3-boto3",), ()),
    "python3-dnf-plugins-core": ("4.3.1", ("dnf-plugins-core",), ()),
    "python3-dnf-plugin-versionlock": ("4.3.1", ("dnf-plugins-core",), ("python3-dnf-plugins-core",)),
    "python3-dnf-plugin-post-transaction-actions": ("4.3.1", ("dnf-plugins-core",), ("python3-dnf-plugins-core",)),
}
# Debian 12's post-transaction-actions 4.3.1 calls libdnf.conf.ConfigParser_substitute, which
# Debian's libdnf bindings (built with SWIG 4.1) expose only as ConfigParser.substitute, so the
# plugin fails on every action. AL2023's libdnf bindings have the name the plugin calls; the bed's
# rpm gets this one-line compatibility fix (nothing else of the plugin changes).
_DNF_PLUGIN_PATCHES = {
    "usr/lib/python3/dist-packages/dnf-plugins/post-transaction-actions.py": (
        "libdnf.conf.ConfigParser_substitute(",
        'getattr(libdnf.conf, "ConfigParser_substitute", None) or libdnf.conf.ConfigParser.substitute)(',
    ),
}
# Which files of the dnf-plugins-core deb go into which rpm (AL2023 splits it the same way).
_DNF_PLUGIN_FILES = {
    "python3-dnf-plugins-core": ("usr/lib/python3/dist-packages/dnfpluginscore/",),
    "python3-dnf-plugin-versionlock": (
        "usr/lib/python3/dist-packages/dnf-plugins/versionlock.py",
        "etc/dnf/plugins/versionlock.conf",
        "etc/dnf/plugins/versionlock.list",
    ),
    "python3-dnf-plugin-post-transaction-actions": (
        "usr/lib/python3/dist-packages/dnf-plugins/post-transaction-actions.py",
        "etc/dnf/plugins/post-transaction-actions.conf",
        "etc/dnf/plugins/post-transaction-actions.d/",
    ),
}
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


def built_for(directory: str, recipe_hash: str) -> bool:
    """Whether ``directory`` was last built from this recipe (its ``.recipe`` stamp)."""
    stamp = os.path.join(directory, ".recipe")
    if not os.path.exists(stamp):
        return False
    with open(stamp, encoding="utf-8") as handle:
        return handle.read() == recipe_hash


def mark_built(directory: str, recipe_hash: str) -> None:
    with open(os.path.join(directory, ".recipe"), "w", encoding="utf-8") as handle:
        handle.write(recipe_hash)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fixture_tree(version: str, root: str) -> str:
    """aws-neuronx-tools laid out like the real package; @VERSION@ marks each file's version.

    The one tree both package formats are built from."""
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
    return root


def build_fixture_deb(version: str, out_dir: str) -> str:
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    # Rebuilt every time (about a second): the fixtures change with the tests.
    deb = os.path.join(out_dir, "aws-neuronx-tools_%s_%s.deb" % (version, arch))
    root = fixture_tree(version, os.path.join(BED, "build", "aws-neuronx-tools-" + version))
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


def build_rpm(name: str, version: str, tree: str, out_dir: str, arch: str, requires=(), summary: str = "") -> str:
    """rpmbuild a binary rpm holding every file under ``tree`` (no scripts, no automatic deps)."""
    top = os.path.join(BED, "build", "rpmbuild-" + name)
    shutil.rmtree(top, ignore_errors=True)
    os.makedirs(os.path.join(top, "SPECS"))
    files = []
    for dirpath, dirnames, filenames in os.walk(tree):
        rel_dir = "/" + os.path.relpath(dirpath, tree).lstrip(".")
        for name_ in sorted(filenames):
            path = os.path.join(rel_dir, name_).replace("//", "/")
            files.append(('%%config(noreplace) "%s"' if path.startswith("/etc/") else '"%s"') % path)
        if not filenames and not dirnames:
            files.append('%%dir "%s"' % rel_dir)
    spec = "\n".join(
        [
            "Name: " + name,
            "Version: " + version,
            "Release: 1",
            "Summary: " + (summary or name + " (test-bed fixture)"),
            "License: test-bed fixture",
            "BuildArch: " + arch,
            "AutoReqProv: no",
            *["Requires: " + req for req in requires],
            "%description",
            (summary or name) + " (test-bed fixture)",
            "%install",
            'cp -a "%s/." "%%{buildroot}/"' % tree,
            "%files",
            "%defattr(-,root,root,-)",
            *files,
            "",
        ]
    )
    spec_path = os.path.join(top, "SPECS", name + ".spec")
    with open(spec_path, "w", encoding="utf-8") as handle:
        handle.write(spec)
    os.makedirs(out_dir, exist_ok=True)
    run(
        [
            "rpmbuild",
            "-bb",
            "--quiet",
            "--define", "_topdir " + top,
            "--define", "_rpmdir " + out_dir,
            "--define", "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
            "--define", "__os_install_post %{nil}",
            "--define", "debug_package %{nil}",
            "--define", "_build_id_links none",
            "--define", "_binary_payload w9.gzdio",
            spec_path,
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return os.path.join(out_dir, "%s-%s-1.%s.rpm" % (name, version, arch))


def make_yum_repo(repo: str, home: str, uid: str) -> None:
    """Sign every rpm with ``uid``'s key, write createrepo_c metadata and sign repomd.xml (repo_gpgcheck)."""
    rpms = sorted(os.path.join(repo, name) for name in os.listdir(repo) if name.endswith(".rpm"))
    run(
        [
            "rpmsign", "--addsign",
            "--define", "__gpg " + shutil.which("gpg"),
            "--define", "_gpg_path " + home,
            "--define", "_gpg_name " + uid,
            "--define", "_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback",
            *rpms,
        ],
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    shutil.rmtree(os.path.join(repo, "repodata"), ignore_errors=True)
    run(["createrepo_c", "--quiet", "--general-compress-type", "gz", repo], stdout=subprocess.DEVNULL)
    repomd = os.path.join(repo, "repodata", "repomd.xml")
    gpg("--local-user", uid, "--detach-sign", "--armor", "-o", repomd + ".asc", repomd, home=home)
    export_key(home, uid, os.path.join(repo, "GPG-PUB-KEY-AMAZON-AWS-NEURON.PUB"), armor=True)


def build_neuron_yum_repos() -> None:
    """The fixture rpms, signed by the bed's key (``yum``) and by the unrelated key (``yum-other-key``)."""
    arch = platform.machine()
    for repo_name, home, uid in (
        ("yum", GNUPG, BED_KEY_UID),
        ("yum-other-key", os.path.join(BED, "gnupg-wrong"), WRONG_KEY_UID),
    ):
        repo = os.path.join(WWW, "neuron", repo_name)
        shutil.rmtree(repo, ignore_errors=True)
        for version in NEURON_TOOLS_VERSIONS:
            tree = fixture_tree(version, os.path.join(BED, "build", "aws-neuronx-tools-rpm-" + version))
            build_rpm("aws-neuronx-tools", version, tree, repo, arch, summary="Neuron system tools")
        make_yum_repo(repo, home, uid)


def build_al2023_os_repo(image: str) -> None:
    """The rpms an AL2023 host installs for the roles, made of the files of Debian 12's debs.

    The debs (and python3-boto3's dependency closure relative to the image) are downloaded
    once in a throw-away container of the al2023 image, whose userland is Debian 12.
    """
    repo = os.path.join(WWW, "amzn", "2023")
    os_home = os.path.join(BED, "gnupg-al2023")
    ensure_key(os_home, AL2023_OS_KEY_UID)
    export_key(os_home, AL2023_OS_KEY_UID, os.path.join(WWW, "keys", "al2023-os.asc"), armor=True)
    recipe = json.dumps([AL2023_OS_RPMS, _DNF_PLUGIN_FILES, _DNF_PLUGIN_PATCHES], sort_keys=True)
    stamp_value = hashlib.sha256((image + recipe).encode()).hexdigest()
    if built_for(repo, stamp_value):
        return
    shutil.rmtree(repo, ignore_errors=True)
    debs = os.path.join(BED, "build", "al2023-debs")
    shutil.rmtree(debs, ignore_errors=True)
    os.makedirs(os.path.join(debs, "boto3"))
    os.makedirs(os.path.join(debs, "dnf-plugins-core"))
    upstream = os.environ.get("NCD_BED_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    script = (
        "set -e; echo 'deb %s bookworm main' > /etc/apt/sources.list; apt-get -qq update; "
        "apt-get -qq install --download-only -y --no-install-recommends python3-boto3 >/dev/null; "
        "cp /var/cache/apt/archives/*.deb /out/boto3/; "
        "cd /out/dnf-plugins-core && apt-get -qq download dnf-plugins-core"
    ) % upstream
    run(["podman", "run", "--rm", "--network", "host", "-v", debs + ":/out", image, "sh", "-c", script])
    trees = {}
    for group in ("boto3", "dnf-plugins-core"):
        tree = os.path.join(debs, group + "-tree")
        for deb in sorted(os.listdir(os.path.join(debs, group))):
            run(["dpkg-deb", "-x", os.path.join(debs, group, deb), tree])
        shutil.rmtree(os.path.join(tree, "usr", "share"), ignore_errors=True)  # docs, man pages, locales
        trees[group] = tree
    for name, (version, _debs, requires) in sorted(AL2023_OS_RPMS.items()):
        if name == "python3-boto3":
            tree = trees["boto3"]
        else:
            tree = os.path.join(debs, name)
            for rel in _DNF_PLUGIN_FILES[name]:
                src, dest = os.path.join(trees["dnf-plugins-core"], rel), os.path.join(tree, rel)
                if rel.endswith("/"):
                    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    shutil.copy2(src, dest)
                if rel in _DNF_PLUGIN_PATCHES:
                    before, after = _DNF_PLUGIN_PATCHES[rel]
                    with open(dest, encoding="utf-8") as handle:
                        text = handle.read()
                    if before not in text:
                        raise RuntimeError("%s: %r not found; the compatibility fix is outdated" % (rel, before))
                    with open(dest, "w", encoding="utf-8") as handle:
                        handle.write(text.replace(before, "(" + after, 1))
        build_rpm(name, version, tree, repo, "noarch", requires)
    make_yum_repo(repo, os_home, AL2023_OS_KEY_UID)
    mark_built(repo, stamp_value)


def image_for(suite: str) -> str:
    script = ["build-image-al2023.sh"] if suite == AL2023_TARGET else ["build-image.sh", suite]
    out = subprocess.run(
        [os.path.join(HERE, script[0]), *script[1:]],
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
    if built_for(mirror, stamp_value):
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
    mark_built(mirror, stamp_value)


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
    build_neuron_yum_repos()
    export_key(GNUPG, BED_KEY_UID, os.path.join(WWW, "keys", "bed-archive.gpg"), armor=False)
    export_key(GNUPG, BED_KEY_UID, os.path.join(WWW, "keys", "bed-archive.asc"), armor=True)
    images = {}
    for suite in SUITES:
        images[suite] = image_for(suite)
        build_os_mirror(suite, images[suite])
    images[AL2023_TARGET] = image_for(AL2023_TARGET)
    build_al2023_os_repo(images[AL2023_TARGET])
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
        "NCD_IMAGE_AL2023": images[AL2023_TARGET],
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
