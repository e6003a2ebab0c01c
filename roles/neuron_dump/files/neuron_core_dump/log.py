"""Logging to syslog/journal under the ident ``neuron-core-dump``.

The hook runs inside the workload, so it must never fail because logging fails:
every call here swallows its own errors. Errors can also be mirrored to stderr
(the workload's log), which is where a user looks first when a dump is missing.
"""

import os
import sys
import syslog

IDENT = "neuron-core-dump"
_MAX_MESSAGE = 2000

LOG_CRIT = syslog.LOG_CRIT
LOG_ERR = syslog.LOG_ERR
LOG_WARNING = syslog.LOG_WARNING
LOG_NOTICE = syslog.LOG_NOTICE
LOG_INFO = syslog.LOG_INFO
LOG_DEBUG = syslog.LOG_DEBUG

_state = {"opened": False, "stderr_level": None, "file": None}


def setup(facility=syslog.LOG_USER, stderr_level=None, log_file=None):
    """Open syslog once. ``stderr_level``: mirror messages at or above this priority to stderr.

    ``log_file`` (optional) appends every message to a file as well; tests use it
    because their hosts have no syslog daemon.
    """
    try:
        syslog.openlog(IDENT, syslog.LOG_PID, facility)
        _state["opened"] = True
    except Exception:  # logging must never break the caller
        pass
    _state["stderr_level"] = stderr_level
    _state["file"] = log_file or None


def log(priority, message):
    text = str(message).replace("\n", " | ")
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE] + "...(truncated)"
    try:
        if not _state["opened"]:
            setup()
        syslog.syslog(priority, text)
    except Exception:  # no syslog socket, encoding trouble: nothing useful to do
        pass
    level = _state["stderr_level"]
    if level is not None and priority <= level:
        try:
            sys.stderr.write("%s: %s\n" % (IDENT, text))
            sys.stderr.flush()
        except Exception:  # stderr may be closed by the caller
            pass
    path = _state["file"]
    if path:
        try:
            line = "%s[%d] <%d> %s\n" % (IDENT, os.getpid(), priority, text)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line.encode("utf-8", "backslashreplace"))
            finally:
                os.close(fd)
        except Exception:  # the mirror file is a debugging aid only
            pass


def crit(message):
    log(LOG_CRIT, message)


def error(message):
    log(LOG_ERR, message)


def warning(message):
    log(LOG_WARNING, message)


def notice(message):
    log(LOG_NOTICE, message)


def info(message):
    log(LOG_INFO, message)
