"""A container dump area next to the host-program bed, and one adoption step at a chosen time."""

import os
import time

AREA_MODE, SHARED_MODE = 0o711, 0o1733
NAME = "dt-20260101-000000-cid-0000000000000000"
HOST_PREFIX = "s3://%s/host/%%i/%%d-%%c"


class Area:
    def __init__(self, bed, **settings):
        self.bed = bed
        self.path = os.path.join(bed.base, "containers")
        self.shared = os.path.join(self.path, "shared")
        for path, mode in ((self.path, AREA_MODE), (self.shared, SHARED_MODE)):
            os.makedirs(path, exist_ok=True)
            os.chmod(path, mode)
        values = {"area": self.path, "quiet_seconds": 5, "s3_prefix": HOST_PREFIX % bed.bucket}
        values.update(settings)
        bed.write_config({"containers": values})

    def dump(self, name=NAME, files=None, uid=100000, slot=None):
        """A dump dir as a container's root (mapped to ``uid``) writes it."""
        parent = slot or self.shared
        path = os.path.join(parent, name)
        os.mkdir(path, 0o755)
        for file_name, data in (files or {}).items():
            with open(os.path.join(path, file_name), "wb") as handle:
                handle.write(data)
            os.chown(os.path.join(path, file_name), uid, uid)
        os.chown(path, uid, uid)
        return path

    def step(self, after_seconds=0):
        """One adoption step as the uploader runs it, ``after_seconds`` in the future."""
        from neuron_core_dump import adopt, log, state

        config = self.bed.loaded_config()
        store = state.Store(config["state_dir"])
        try:
            return adopt.run(config, store.fd, log, now_ns=time.time_ns() + int(after_seconds * 1e9))
        finally:
            store.close()

    def adopt(self, start=0):
        """Steps far enough apart for a quiet dir to be watched, claimed and copied; returns the summaries."""
        quiet = self.bed.settings["containers"]["quiet_seconds"]
        return [self.step(start + k * (quiet + 1)) for k in range(3)]

    def adopted_dirs(self):
        return sorted(n for n in os.listdir(self.bed.dumps) if "-container-" in n)
