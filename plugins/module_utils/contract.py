# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Facts about the Neuron runtime's core-dump contract (docs/runtime-contract.md).

Only facts live here: the names libnrt reads, its defaults and limits. Host
paths that modules read or write are in ``paths.py`` so tests can move them.
"""

from __future__ import annotations

LOCAL_DIR_VAR = "NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY"
S3_PREFIX_VAR = "NEURON_RT_S3_CORE_DUMP_PREFIX"
# Order matters: every target renders the variables in this order.
MANAGED_VARS = (LOCAL_DIR_VAR, S3_PREFIX_VAR)

# libnrt's own default when NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY is unset (or
# empty while an S3 prefix is set: the runtime always stages locally first).
RUNTIME_DEFAULT_LOCAL_DIR = "/tmp/neuron-core-dump/dt-%d-cid-%c"

# Our default: a root-owned, persistent base instead of world-writable /tmp.
DEFAULT_LOCAL_DIR = "/var/lib/neuron-core-dump/dumps/dt-%d-cid-%c"

# The runtime writes expanded directories into a 0x1000-byte buffer.
EXPANDED_DIR_CAP = 0x1000
# Longest file name the runtime (and the hook) put inside a dump directory.
FILENAME_CAP = 0xFF
# S3 object keys are at most 1024 bytes of UTF-8.
S3_KEY_CAP = 1024

VENDOR_PACKAGE = "aws-neuronx-tools"
