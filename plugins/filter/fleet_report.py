# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn core_dump_info results into the fleet report (see verify.yml)."""

from __future__ import annotations

from ansible_collections.neuron_ops.core_dump.plugins.plugin_utils.fleet_report import (
    build_report,
    render_markdown,
    summary_lines,
)


class FilterModule:
    """fleet_report, fleet_report_markdown and fleet_report_summary."""

    def filters(self):
        return {
            "fleet_report": build_report,
            "fleet_report_markdown": render_markdown,
            "fleet_report_summary": summary_lines,
        }
