"""Make this checkout importable as ``ansible_collections.neuron_ops.core_dump``.

Unit tests import modules and module_utils by their collection path, exactly as
ansible-core does on a host. A symlink under ``.bed/collections`` (gitignored)
points back at the checkout, so no copy can go stale.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS_ROOT = os.path.join(REPO_ROOT, ".bed", "collections")


def _link_collection():
    namespace_dir = os.path.join(COLLECTIONS_ROOT, "ansible_collections", "neuron_ops")
    link = os.path.join(namespace_dir, "core_dump")
    os.makedirs(namespace_dir, exist_ok=True)
    if not os.path.islink(link):
        tmp = link + ".tmp.%d" % os.getpid()
        os.symlink(REPO_ROOT, tmp)
        os.replace(tmp, link)


_link_collection()
if COLLECTIONS_ROOT not in sys.path:
    sys.path.insert(0, COLLECTIONS_ROOT)
