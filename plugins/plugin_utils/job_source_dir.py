# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A job's dump pulled to a local directory, as job_fetch reads it (playbooks/pull_job.yml).

The directory holds ``<host>-manifest.json`` (core_dump_job_stage's manifests, the
uploader's format) and the staged files named by their ``key``; job_fetch checks them
against the manifests and puts them in place. Nothing here follows a symlink.
"""

from __future__ import annotations

import os
import stat

from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils import job_manifest
from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils.job_fetch import CHUNK, FetchError, Mismatch, Missing

_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class DirSource:
    key_prefix = ""

    def __init__(self, root):
        self.root = root

    def describe(self):
        return self.root

    def list_manifests(self):
        try:
            return sorted(name for name in os.listdir(self.root) if name.endswith(job_manifest.SUFFIX))
        except OSError as exc:
            raise FetchError("cannot list %s: %s" % (self.root, exc.strerror)) from None

    def _open(self, key):
        try:
            fd = os.open(os.path.join(self.root, key), _FLAGS)
        except FileNotFoundError:
            raise Missing(key) from None
        except OSError as exc:
            raise Mismatch("cannot open: %s (a symlink is never followed)" % exc.strerror) from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise Mismatch("not a regular file")
        return fd, info

    def read_manifest(self, key, limit):
        fd, info = self._open(key)
        try:
            if info.st_size > limit:
                raise job_manifest.ManifestError("manifest larger than %d bytes" % limit)
            return os.read(fd, limit + 1)
        except Mismatch as exc:
            raise job_manifest.ManifestError(str(exc)) from None
        finally:
            os.close(fd)

    def exists(self, entry):
        return os.path.lexists(os.path.join(self.root, entry.key))

    def chunks(self, entry):
        fd, info = self._open(entry.key)
        try:
            if info.st_size != entry.size:
                raise Mismatch("%d bytes, the manifest says %d" % (info.st_size, entry.size))
            while True:
                chunk = os.read(fd, CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            os.close(fd)
