from __future__ import annotations

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contexts


def test_parse_env_output_nul_and_newline():
    assert contexts.parse_env_output(b"A=1\0B=two\nlines\0C=\0") == {"A": "1", "B": "two\nlines", "C": ""}
    assert contexts.parse_env_output(b"A=1\nB=2\n") == {"A": "1", "B": "2"}


def test_parse_show_environment():
    text = "LANG=C.UTF-8\nPATH=/usr/bin\nNEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=/v/dt-%d-cid-%c\nX=$'a\\nb\\x41'\nE=\n"
    assert contexts.parse_show_environment(text) == {
        "LANG": "C.UTF-8",
        "PATH": "/usr/bin",
        "NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY": "/v/dt-%d-cid-%c",
        "X": "a\nbA",
        "E": "",
    }


def test_parse_properties_and_environment():
    props = contexts.parse_properties('Environment=A=1 "B=x y" C=\nLoadState=loaded\nNeedDaemonReload=no\n')
    assert props["LoadState"] == "loaded" and props["NeedDaemonReload"] == "no"
    assert contexts.parse_environment_property(props["Environment"]) == {"A": "1", "B": "x y", "C": ""}
    assert contexts.parse_environment_property("") == {}


def test_login_shell_runs_profile_scripts(tmp_path, monkeypatch):
    script = tmp_path / "p.sh"
    script.write_text("export FROM_PROFILE=yes\nexport SEEN_PAM=$FROM_PAM\n")
    monkeypatch.setattr(contexts, "LOGIN_SHELL_ARGV", ["/bin/sh", "-c", ". %s; exec env -0" % script])
    env, error = contexts.login_shell_env({"FROM_PAM": "pam"})
    assert error is None
    assert env["FROM_PROFILE"] == "yes" and env["SEEN_PAM"] == "pam" and env["HOME"] == "/"


def test_login_shell_failure_is_reported(monkeypatch):
    monkeypatch.setattr(contexts, "LOGIN_SHELL_ARGV", ["/bin/sh", "-c", "echo broken >&2; exit 3"])
    env, error = contexts.login_shell_env({})
    assert env is None and "exited 3" in error and "broken" in error
    monkeypatch.setattr(contexts, "LOGIN_SHELL_ARGV", ["/nonexistent/sh"])
    env, error = contexts.login_shell_env({})
    assert env is None and "not found" in error


def test_login_shell_timeout(monkeypatch):
    monkeypatch.setattr(contexts, "TIMEOUT", 0.2)
    monkeypatch.setattr(contexts, "LOGIN_SHELL_ARGV", ["/bin/sh", "-c", "sleep 5"])
    env, error = contexts.login_shell_env({})
    assert env is None and "did not finish" in error
