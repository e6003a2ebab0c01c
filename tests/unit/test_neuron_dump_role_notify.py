"""The neuron_dump role's notify variables: rendered into ``notify`` of config.json, which the
host program accepts, and refused before anything changes when they are bad (real
ansible-core on localhost, the role's own spec and validate.yml; see test_neuron_dump_role_config)."""

from __future__ import annotations

import pytest
from test_neuron_dump_role_config import host_program_accepts, render


def test_defaults_render_the_journal_only(tmp_path):
    proc, config = render(tmp_path, {})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert config["notify"] == {"journal": True, "timeout_seconds": 30, "max_concurrent": 4}
    assert host_program_accepts(config, tmp_path)["notify"]["command"] == []


def test_every_notify_variable_maps_to_its_key(tmp_path):
    proc, config = render(
        tmp_path,
        {
            "neuron_dump_notify_command": ["/usr/local/bin/page-oncall", "--team", "ml"],
            "neuron_dump_notify_user": "oncall",
            "neuron_dump_notify_timeout_seconds": 10,
            "neuron_dump_notify_max_concurrent": 2,
            "neuron_dump_notify_journal": False,
        },
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert config["notify"] == {
        "command": ["/usr/local/bin/page-oncall", "--team", "ml"],
        "user": "oncall",
        "timeout_seconds": 10,
        "max_concurrent": 2,
        "journal": False,
    }
    assert host_program_accepts(config, tmp_path)["notify"]["user"] == "oncall"


@pytest.mark.parametrize(
    "bad",
    [
        {"neuron_dump_notify_command": ["/bin/notify"], "neuron_dump_notify_user": "root"},
        {"neuron_dump_notify_command": ["/bin/notify"]},
        {"neuron_dump_notify_command": ["notify"], "neuron_dump_notify_user": "oncall"},
        {"neuron_dump_notify_timeout_seconds": 0},
        {"neuron_dump_notify_max_concurrent": 65},
    ],
)
def test_bad_notify_variables_are_refused(tmp_path, bad):
    proc, config = render(tmp_path, bad)
    assert proc.returncode != 0 and config is None
    assert "Invalid notification settings" in proc.stdout
