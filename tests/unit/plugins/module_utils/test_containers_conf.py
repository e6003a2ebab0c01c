from __future__ import annotations

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import container_area, containers_conf, contract

LOCAL, S3 = contract.LOCAL_DIR_VAR, contract.S3_PREFIX_VAR
SHARED = "/var/lib/neuron-core-dump/containers/shared"


def test_render_keeps_podman_default_env_and_parses_back():
    data = containers_conf.render({LOCAL: "/x/%d-%c", S3: "s3://b/%d-%c"}, SHARED)
    parsed = containers_conf.arrays(data)
    assert parsed["env"][:2] == list(containers_conf.PODMAN_DEFAULT_ENV)
    assert parsed["volumes"] == [SHARED + ":" + container_area.CONTAINER_MOUNT + ":rw,nosuid,nodev,noexec"]
    assert containers_conf.parse(data) == {LOCAL: container_area.CONTAINER_LOCAL_DIR, S3: ""}
    assert containers_conf.problems(data, SHARED) == []


def test_tomllib_reads_the_same(tmp_path):
    import tomllib

    data = containers_conf.render({LOCAL: "/x/%d-%c"}, SHARED)
    assert tomllib.loads(data.decode())["containers"] == {
        "env": containers_conf.arrays(data)["env"],
        "volumes": containers_conf.arrays(data)["volumes"],
    }


def test_hand_written_files():
    data = (
        b"[engine]\nenv = [\"X=1\"]\n[containers]\n# comment\nenv = [ 'TERM=xterm', # c\n"
        b' "NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=/a",\n  "NEURON_RT_S3_CORE_DUMP_PREFIX=s3://t/x" ]\nother = 1\n'
    )
    assert containers_conf.parse(data) == {LOCAL: "/a", S3: "s3://t/x"}
    problems = containers_conf.problems(data, SHARED)
    assert any("PATH" in p for p in problems) and any("credentials" in p for p in problems)
    assert any("does not mount" in p for p in problems)
    for junk in (b"", b"\xff[containers]\nenv = [", b'[containers]\nenv = ["unterminated\n', b"env = 3"):
        assert containers_conf.parse(junk) == {}


def test_mangled_files_never_raise_or_hang():
    """Any bytes in the drop-in or the spec give a result (a seeded, bounded fuzz)."""
    import random

    from ansible_collections.neuron_ops.core_dump.plugins.module_utils import cdi_spec

    rng = random.Random(1)
    alphabet = b"[]=\"',#\n \\aenv=volumes{}:0"
    base = containers_conf.render({LOCAL: "/x/%d-%c"}, SHARED)
    for i in range(2000):
        if i % 2:
            data = bytes(rng.choice(alphabet) for _byte in range(rng.randint(0, 60)))
        else:
            mangled = bytearray(base)
            for _flip in range(3):
                mangled[rng.randrange(len(mangled))] = rng.choice(alphabet)
            data = bytes(mangled)
        assert isinstance(containers_conf.parse(data), dict)
        assert isinstance(containers_conf.problems(data, SHARED), list)
        assert isinstance(cdi_spec.parse(data), dict)
