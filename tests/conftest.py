"""Make this checkout importable as ``ansible_collections.neuron_ops.core_dump``.

Unit tests import modules and module_utils by their collection path, exactly as
ansible-core does on a host. A symlink under ``.bed/collections`` (gitignored)
points back at the checkout, so no copy can go stale.

It also implements the ``bed`` marker (below): skip or fail a test that needs the bed.
"""

import os
import shutil
import sys

import pytest

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


# --- tests that need the bed ---------------------------------------------------
# ``@pytest.mark.bed(*programs)`` marks a test that needs root, the bed's bookworm image
# (NCD_IMAGE_BOOKWORM, from .bed/state/bed.env) and these programs. Without them it skips
# in a developer's run, but fails where every test must run: tests/run-all.sh sets
# NCD_REQUIRE_BED=1 when it started the bed (make test does), and CI sets CI=true.
BED_REQUIRED = os.environ.get("NCD_REQUIRE_BED") == "1" or os.environ.get("CI") == "true"


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("bed")
    if marker is None:
        return
    missing = [] if os.geteuid() == 0 else ["root"]
    missing += [program for program in marker.args if not shutil.which(program)]
    if not os.environ.get("NCD_IMAGE_BOOKWORM"):
        missing.append("NCD_IMAGE_BOOKWORM (source .bed/state/bed.env)")
    if not missing:
        return
    reason = "needs " + ", ".join(missing)
    if BED_REQUIRED:
        pytest.fail(reason + "; required here (NCD_REQUIRE_BED=1 or CI=true), so not skipped", pytrace=False)
    pytest.skip(reason)
