# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The installed hook as the modules see it: which file it is, who may execute it, its execute bits.

libnrt checks ``access(hook, X_OK)`` as the workload's user before every dump,
so the execute bits are a switch that reaches every host process at once (not
containers: they see their own image's file). Taking them away is recorded in
a small state file holding the original mode, so a later enable or absent
restores exactly that mode -- and only if nobody replaced the file meanwhile.
"""

from __future__ import annotations

import errno
import grp
import json
import os
import pwd
import re
import stat
import subprocess

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import filewriter

# Our hook carries this line in its first 4 KiB; the vendor's does not.
VERSION_MARK = re.compile(rb'NEURON_CORE_DUMP_HOOK_VERSION\s*=\s*"([0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.+-]*)"')
VERSION_WINDOW = 4096

TEST_PROGRAMS = ("/usr/bin/test", "/bin/test")

OURS = "ours"
VENDOR = "vendor"
MISSING = "missing"


def identify(path):
    """What is at ``path``: ours (with version), vendor, or missing; sha256 and mode."""
    info = {
        "path": path,
        "kind": MISSING,
        "version": None,
        "sha256": None,
        "mode": None,
        "owner": None,
        "group": None,
        "symlink_to": None,
    }
    try:
        st = os.stat(path)
    except OSError:
        return info
    if os.path.islink(path):
        info["symlink_to"] = os.path.realpath(path)
    info["mode"] = "%04o" % stat.S_IMODE(st.st_mode)
    info["owner"] = filewriter.account_name(pwd.getpwuid, st.st_uid)
    info["group"] = filewriter.account_name(grp.getgrgid, st.st_gid)
    if not stat.S_ISREG(st.st_mode):
        info["kind"] = VENDOR
        info["error"] = "not a regular file"
        return info
    try:
        with open(path, "rb") as handle:
            head = handle.read(VERSION_WINDOW)
        info["sha256"] = filewriter.sha256_file(path)
    except OSError as exc:
        info["kind"] = VENDOR
        info["error"] = "cannot read: %s" % exc.strerror
        return info
    match = VERSION_MARK.search(head)
    if match:
        info["kind"] = OURS
        info["version"] = match.group(1).decode("ascii")
    else:
        info["kind"] = VENDOR
    return info


def _allowed(st, uid, gids, want):
    """Classic permission-class check: owner, else group, else other bits."""
    mode = stat.S_IMODE(st.st_mode)
    if uid == st.st_uid:
        return bool(mode & (want << 6))
    if st.st_gid in gids:
        return bool(mode & (want << 3))
    return bool(mode & want)


def _ancestors(path):
    """Every directory that must be searched to reach ``path`` (absolute, normalized)."""
    path = os.path.normpath(path)
    dirs = []
    current = os.path.dirname(path)
    while True:
        dirs.append(current)
        if current == "/":
            break
        current = os.path.dirname(current)
    return list(reversed(dirs))


def mode_bits_allow_exec(path, uid, gids):
    """(allowed, reason) from mode bits alone for a user ``uid`` in groups ``gids``.

    uid 0 searches every directory and may execute a file with any execute bit.
    ``uid=None`` means "a user who owns nothing and is in none of the groups".
    ACLs and LSMs are not evaluated here (see verify_as_user for the real check).
    """
    chain = _ancestors(path)
    real = os.path.realpath(path)
    if real != os.path.normpath(path):
        chain += [d for d in _ancestors(real) if d not in chain]
    for directory in chain:
        try:
            st = os.stat(directory)
        except OSError as exc:
            return False, "cannot stat %s: %s" % (directory, exc.strerror)
        if uid != 0 and not _allowed(st, uid, gids, 0o1):
            return False, "no search (x) permission on directory %s (mode %04o)" % (directory, stat.S_IMODE(st.st_mode))
    try:
        st = os.stat(real)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False, "hook is missing"
        return False, "cannot stat %s: %s" % (real, exc.strerror)
    if not stat.S_ISREG(st.st_mode):
        return False, "%s is not a regular file" % real
    mode = stat.S_IMODE(st.st_mode)
    if uid == 0:
        if not mode & 0o111:
            return False, "no execute bit set (mode %04o)" % mode
    elif not _allowed(st, uid, gids, 0o1):
        return False, "execute bit not set for this user's permission class (mode %04o)" % mode
    if _noexec(real):
        return False, "%s is on a noexec mount" % real
    return True, "mode %04o allows it" % mode


def _noexec(path):
    try:
        return bool(os.statvfs(path).f_flag & getattr(os, "ST_NOEXEC", 8))
    except OSError:
        return False


def user_identity(name):
    """(uid, primary gid, [all gids]) of a local user, or None when the user does not exist."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid, sorted(set(os.getgrouplist(name, entry.pw_gid)))


def verify_as_user(path, uid, gid, gids, timeout=10):
    """The real access(X_OK) as that user (ACLs, LSMs, mounts included); None if we cannot check.

    coreutils ``test -x`` asks the kernel (faccessat), and unlike our own
    interpreter it is executable by every user.
    """
    if os.geteuid() != 0:
        return None
    tester = next((t for t in TEST_PROGRAMS if os.path.isfile(t)), None)
    if tester is None:
        return None
    try:
        result = subprocess.run(
            [tester, "-x", path],
            user=uid,
            group=gid,
            extra_groups=gids,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            cwd="/",
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    # test: 0 true, 1 false, anything else an error (no answer).
    return {0: True, 1: False}.get(result.returncode)


def executable_by(path, workload_user=None):
    """Who can execute the hook: root, any unprivileged user, and the workload user if named."""
    report = {}
    allowed, reason = mode_bits_allow_exec(path, 0, [0])
    report["root"] = {"executable": allowed, "reason": reason}
    allowed, reason = mode_bits_allow_exec(path, None, [])
    report["any_user"] = {"executable": allowed, "reason": reason}
    if workload_user:
        ident = user_identity(workload_user)
        if ident is None:
            report["workload_user"] = {
                "name": workload_user,
                "executable": False,
                "reason": "no such user",
                "verified": False,
            }
        else:
            uid, gid, gids = ident
            allowed, reason = mode_bits_allow_exec(path, uid, gids)
            real = verify_as_user(path, uid, gid, gids)
            if real is not None and real != allowed:
                reason = "access(X_OK) as the user says %s (ACL, LSM or mount option); mode bits: %s" % (
                    "yes" if real else "no",
                    reason,
                )
                allowed = real
            report["workload_user"] = {
                "name": workload_user,
                "uid": uid,
                "executable": allowed,
                "reason": reason,
                "verified": real is not None,
            }
    return report


# --- execute bits on/off, with a record of the original mode ------------------


def read_state(state_path):
    data = filewriter.read_bytes(state_path)
    if not data:
        return None
    try:
        state = json.loads(data.decode("utf-8"))
    except ValueError:
        return None
    return state if isinstance(state, dict) else None


class HookModeChange:
    """Planned change of the hook's mode and of our state record."""

    def __init__(self, hook_path, state_path, before_mode, after_mode, state_before, state_after, note=None):
        self.hook_path = hook_path
        self.state_path = state_path
        self.before_mode = before_mode
        self.after_mode = after_mode
        self.state_before = state_before
        self.state_after = state_after
        self.note = note

    @property
    def changed(self):
        """Only the hook's mode counts: the state record is our own bookkeeping."""
        return self.before_mode != self.after_mode

    def diff(self):
        return {
            "before_header": "%s (mode)" % self.hook_path,
            "after_header": "%s (mode)" % self.hook_path,
            "before": "mode %04o\n" % self.before_mode,
            "after": "mode %04o\n" % self.after_mode,
        }

    def apply(self):
        if self.state_after is not None and self.state_after != self.state_before:
            # Record first: a crash before chmod leaves a record that matches nothing, harmless.
            filewriter.write_atomic(
                self.state_path, (json.dumps(self.state_after, sort_keys=True) + "\n").encode(), new_mode=0o644
            )
        if self.changed:
            os.chmod(self.hook_path, self.after_mode)
        if self.state_after is None and self.state_before is not None:
            filewriter.remove(self.state_path)


def plan_disable(hook_path, state_path):
    """Remove every execute bit; remember the mode we found (None when the hook is missing)."""
    try:
        mode = stat.S_IMODE(os.stat(hook_path).st_mode)
    except FileNotFoundError:
        return None
    state = read_state(state_path)
    if not mode & 0o111:
        return HookModeChange(hook_path, state_path, mode, mode, state, state)
    after = mode & ~0o111
    record = {"path": hook_path, "original_mode": "%04o" % mode, "disabled_mode": "%04o" % after}
    return HookModeChange(hook_path, state_path, mode, after, state, record)


def plan_restore(hook_path, state_path):
    """Give back the mode we took away; None when we did not take it (no record)."""
    state = read_state(state_path)
    if state is None:
        return None
    try:
        mode = stat.S_IMODE(os.stat(hook_path).st_mode)
    except FileNotFoundError:
        return HookModeChange(hook_path, state_path, 0, 0, state, None, note="hook missing; dropped the stale record")
    try:
        original = int(state.get("original_mode", ""), 8)
        disabled = int(state.get("disabled_mode", ""), 8)
    except (TypeError, ValueError):
        return HookModeChange(hook_path, state_path, mode, mode, state, None, note="unreadable record dropped")
    if mode != disabled:
        # Someone (a package upgrade, the neuron_dump role) changed the file since: leave it.
        return HookModeChange(
            hook_path,
            state_path,
            mode,
            mode,
            state,
            None,
            note="hook mode changed since it was disabled (now %04o); left as is" % mode,
        )
    return HookModeChange(hook_path, state_path, mode, original, state, None)
