# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the environment a NEW workload would get in each way one can start.

- login_shell: a real login shell (``sh -l``), seeded with what pam_env gives
  a session, so /etc/profile and /etc/profile.d/*.sh run as on a real login.
- pam_session: /etc/environment, parsed like pam_env.
- systemd_service: the manager's environment (``systemctl show-environment``),
  which includes DefaultEnvironment= once the manager has re-read it.
- unit:<name>: that environment overlaid with the unit's ``Environment=``.
"""

from __future__ import annotations

import os
import subprocess

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import systemd_dropin

# "env -0" prints NUL-separated entries, so values with newlines stay intact.
LOGIN_SHELL_ARGV = ["/bin/sh", "-l", "-c", "exec env -0"]
SU_LOGIN_ARGV = ["su", "-l", "{user}", "-s", "/bin/sh", "-c", "exec env -0"]
BASE_ENV = {"HOME": "/", "TERM": "dumb", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
TIMEOUT = 30


def parse_env_output(data):
    """{name: value} from ``env -0`` (NUL-separated) or plain ``env`` output."""
    text = data.decode("utf-8", "surrogateescape")
    entries = text.split("\0") if "\0" in text else text.splitlines()
    env = {}
    for entry in entries:
        name, eq, value = entry.partition("=")
        if eq and name and " " not in name:
            env[name] = value
    return env


def _run_env(argv, env):
    try:
        result = subprocess.run(
            argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT, cwd="/", check=False
        )
    except FileNotFoundError as exc:
        return None, "%s not found" % exc.filename
    except subprocess.TimeoutExpired:
        return None, "%s did not finish within %ds" % (" ".join(argv), TIMEOUT)
    except OSError as exc:
        return None, str(exc)
    if result.returncode != 0:
        return None, "%s exited %d: %s" % (
            " ".join(argv),
            result.returncode,
            result.stderr.decode("utf-8", "replace").strip()[:500],
        )
    return parse_env_output(result.stdout), None


def login_shell_env(session_env):
    """(env, error) of a fresh login shell, started the way sshd/login would: pam_env first, then profile."""
    env = dict(BASE_ENV)
    env.update(session_env)
    return _run_env(list(LOGIN_SHELL_ARGV), env)


def su_login_env(user):
    """(env, error) of ``su -l user``: a real PAM session plus login shell, as root only."""
    if os.geteuid() != 0:
        return None, "needs root to switch user without a password"
    argv = [part.replace("{user}", user) for part in SU_LOGIN_ARGV]
    return _run_env(argv, dict(BASE_ENV))


def _decode_dollar_quote(body):
    out = []
    pos = 0
    simple = {
        "n": "\n",
        "t": "\t",
        "r": "\r",
        "\\": "\\",
        "'": "'",
        '"': '"',
        "a": "\a",
        "b": "\b",
        "e": "\x1b",
        "f": "\f",
        "v": "\v",
    }
    while pos < len(body):
        ch = body[pos]
        if ch == "\\" and pos + 1 < len(body):
            nxt = body[pos + 1]
            if nxt == "x" and pos + 4 <= len(body):
                try:
                    out.append(chr(int(body[pos + 2 : pos + 4], 16)))
                    pos += 4
                    continue
                except ValueError:
                    pass
            out.append(simple.get(nxt, nxt))
            pos += 2
            continue
        out.append(ch)
        pos += 1
    return "".join(out)


def parse_show_environment(text):
    """{name: value} from ``systemctl show-environment`` (values may be $'...'-quoted)."""
    env = {}
    for line in text.splitlines():
        name, eq, value = line.partition("=")
        if not eq:
            continue
        if value.startswith("$'") and value.endswith("'") and len(value) >= 3:
            value = _decode_dollar_quote(value[2:-1])
        env[name] = value
    return env


def parse_properties(text):
    """{Property: value} from ``systemctl show -p A -p B unit`` output."""
    props = {}
    for line in text.splitlines():
        name, eq, value = line.partition("=")
        if eq:
            props[name] = value
    return props


def parse_environment_property(value):
    """{name: value} from a unit's ``Environment=`` property as systemctl shows it."""
    env = {}
    for word in systemd_dropin.split_words(value or ""):
        name, eq, val = word.partition("=")
        if eq and name:
            env[name] = val
    return env
