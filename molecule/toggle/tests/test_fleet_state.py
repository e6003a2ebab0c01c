"""After site -> disable -> enable: every target carries the enabled values, and the fleet
report on the controller counts all three hosts as enabled with no drift."""

from __future__ import annotations

import json
import os

REPORT = os.path.join(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", ""), "fleet-report.json")
LOCAL_DIR = "/var/lib/neuron-core-dump/dumps/dt-%d-cid-%c"


def test_pam_and_login_shell_targets_are_enabled(host):
    assert 'NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY="%s"' % LOCAL_DIR in host.file("/etc/environment").content_string
    assert LOCAL_DIR in host.file("/etc/profile.d/neuron-core-dump.sh").content_string


def test_systemd_services_get_the_literal_pattern(host):
    # The drop-in escapes % as %%; the manager must hand services the literal pattern.
    assert "NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=%s" % LOCAL_DIR in host.check_output("systemctl show-environment")
    pid = host.check_output("systemctl show -p MainPID --value ncd-long-workload.service")
    environ = host.check_output("tr '\\0' '\\n' < /proc/%s/environ" % pid)
    assert "NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY=%s" % LOCAL_DIR in environ.splitlines()


def test_fleet_report_counts_every_host_enabled():
    with open(REPORT, encoding="utf-8") as handle:
        report = json.load(handle)
    assert report["by_state"] == {"enabled": 3}
    assert report["drifting_hosts"] == []
    assert report["restart_required"] == []
    assert os.path.exists(REPORT.replace(".json", ".md"))
