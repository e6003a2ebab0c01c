# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The attributes both modules share; each module adds its own check-mode wording and its diff_mode."""

from __future__ import annotations


class ModuleDocFragment:
    # ansible-doc merges a module's own attributes over these key by key: each module
    # adds the description of check_mode (what check mode means for it) and its diff_mode.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
  platform:
    support: full
    platforms: posix
    description: Linux hosts with the Neuron tools; systemd is optional (the systemd parts are skipped without it).
"""
