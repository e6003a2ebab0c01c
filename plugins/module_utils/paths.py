# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixed host paths read or written by the modules.

They are not module options on purpose: the runtime and the OS fix them. Code
reads them as ``paths.NAME`` at call time, so unit tests can point them at a
temporary tree with monkeypatch.
"""

from __future__ import annotations

# Targets written by core_dump (one file format each, see the target modules).
ETC_ENVIRONMENT = "/etc/environment"
PROFILE_SCRIPT = "/etc/profile.d/neuron-core-dump.sh"
MANAGER_DROPIN = "/etc/systemd/system.conf.d/50-neuron-core-dump.conf"
UNIT_DROPIN_ROOT = "/etc/systemd/system"
UNIT_DROPIN_NAME = "50-neuron-core-dump.conf"

# The hook libnrt executes (hard-coded in the runtime) and the vendor original
# that the neuron_dump role diverts aside.
HOOK = "/opt/aws/neuron/bin/neuron-dump"
VENDOR_HOOK = "/opt/aws/neuron/bin/neuron-dump.distrib"
# The neuron_dump role's byte-for-byte copy of the hook it installed: the hook is compared with it
# (drift by checksum), and on RPM hosts the dnf action re-installs it after aws-neuronx-tools changes.
HOOK_REFERENCE = "/usr/local/lib/neuron-core-dump/neuron-dump.hook"

# Where core_dump remembers the hook mode it changed, so it can restore exactly.
HOOK_STATE = "/var/lib/neuron-core-dump/core-dump-hook-state.json"

# The host program of this collection (neuron_dump role); optional.
HOST_PROGRAM = "/usr/local/bin/neuron-core-dump"
# Its configuration; core_dump reads the uploader's S3 allow-lists from it (never writes it).
UPLOADER_CONFIG = "/etc/neuron-core-dump/config.json"

# sd_booted(): systemd is the running init iff this directory exists.
SYSTEMD_RUN_DIR = "/run/systemd/system"

PROC_ROOT = "/proc"

# Container targets (docs/containers.md). core_dump's cdi_spec_dir option picks one
# of the two CDI spec directories; container_dump_dir moves the area.
CDI_SPEC_DIR_ETC = "/etc/cdi"
CDI_SPEC_DIR_RUN = "/var/run/cdi"
CDI_SPEC_DIR = CDI_SPEC_DIR_ETC  # the one core_dump writes (cdi_spec_dir)
CDI_SPEC_NAME = "neuron-ops.io-core-dump.json"
CONTAINER_DUMP_AREA = "/var/lib/neuron-core-dump/containers"
PODMAN_DROPIN = "/etc/containers/containers.conf.d/50-neuron-core-dump.conf"
# Read (never written) by core_dump_info to tell whether each runtime reads CDI.
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
DOCKER_DAEMON_JSON = "/etc/docker/daemon.json"
