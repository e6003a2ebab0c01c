"""Every validation rule of core_dump's options: one test each, message checked."""

from __future__ import annotations

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract, settings

LOCAL = contract.LOCAL_DIR_VAR
S3 = contract.S3_PREFIX_VAR


@pytest.mark.parametrize(
    ("local_dir", "fragment"),
    [
        ("", "local_dir: must not be empty with state=enabled"),
        ("dumps/%d-%c", "local_dir: must be an absolute path"),
        ("/var/../etc/%d-%c", "local_dir: must not contain '..' path components"),
        ("/var/dumps/%d-%c-%x", "local_dir: '%x' is not a runtime variable"),
        ("/var/dumps/%d-%c-%", "local_dir: a lone '%' at the end"),
        ("/var/dumps/%d", "local_dir: must contain %c"),
        ("/var/dumps/x", "local_dir: must contain %d and %c"),
        ("/var/dumps/%d-%c\n", "local_dir: unsafe characters: newline"),
        ("/var/dumps/%d-%c\r", "local_dir: unsafe characters: carriage return"),
        ('/var/"dumps"/%d-%c', "local_dir: unsafe characters: double quote"),
        ("/var/'dumps'/%d-%c", "local_dir: unsafe characters: single quote"),
        ("/var/$HOME/%d-%c", "local_dir: unsafe characters: dollar sign"),
        ("/var/du\\mps/%d-%c", "local_dir: unsafe characters: backslash"),
        ("/var/`id`/%d-%c", "local_dir: unsafe characters: backtick"),
        ("/var/dumps#1/%d-%c", "local_dir: unsafe characters: hash"),
        ("/var/my dumps/%d-%c", "local_dir: unsafe characters: whitespace"),
        ("/var/dumps\x07/%d-%c", "local_dir: unsafe characters: control character"),
        ("/%d-%c", "local_dir: must have a fixed base directory"),
        ("/" + "d" * 4000 + "/%d-%c", "local_dir: too long"),
    ],
)
def test_local_dir_rules(local_dir, fragment):
    _values, problems = settings.desired_values("enabled", local_dir, None)
    assert any(fragment in p for p in problems), problems


def test_non_unique_allowed_on_request():
    _values, problems = settings.desired_values("enabled", "/var/dumps/all", None, allow_non_unique=True)
    assert problems == []


@pytest.mark.parametrize(
    ("prefix", "fragment"),
    [
        ("https://b/%d-%c", "s3_prefix: must start with 's3://'"),
        ("s3://Bad/%d-%c", "s3_prefix: bucket name 'Bad' may contain only"),
        ("s3://bucket/x y/%d-%c", "s3_prefix: unsafe characters: whitespace"),
        ("s3://bucket/$x/%d-%c", "s3_prefix: unsafe characters: dollar sign"),
        ("s3://bucket/static", "s3_prefix: must contain %d and %c"),
    ],
)
def test_s3_prefix_rules_name_the_option(prefix, fragment):
    _values, problems = settings.desired_values("enabled", "/var/dumps/%d-%c", prefix)
    assert any(fragment in p for p in problems), problems


def test_enabled_values():
    values, problems = settings.desired_values("enabled", "/var/d/%d-%c", "s3://bucket/%d-%c")
    assert problems == []
    assert values == {LOCAL: "/var/d/%d-%c", S3: "s3://bucket/%d-%c"}


def test_enabled_without_s3_leaves_it_unset():
    values, _problems = settings.desired_values("enabled", "/var/d/%d-%c", None)
    assert values == {LOCAL: "/var/d/%d-%c"}
    values, _problems = settings.desired_values("enabled", "/var/d/%d-%c", "")
    assert values == {LOCAL: "/var/d/%d-%c"}


def test_disabled_writes_both_empty_and_ignores_bad_paths():
    values, problems = settings.desired_values("disabled", "relative", "bogus")
    assert problems == []
    assert values == {LOCAL: "", S3: ""}


def test_absent_means_remove():
    assert settings.desired_values("absent", "x", None) == (None, [])


def test_tmp_warning():
    assert settings.local_dir_warnings("/tmp/x/%d-%c")
    assert settings.local_dir_warnings("/var/lib/x/%d-%c") == []


def test_s3_prefix_less_unique_than_local_dir_is_refused_naming_the_rule():
    _values, problems = settings.desired_values("enabled", "/var/d/%d-%c-%i-%p", "s3://bkt/neuron/dt-%d-cid-%c")
    (problem,) = problems
    assert problem.startswith("s3_prefix: must use every variable of local_dir")
    assert "missing %i %p" in problem


def test_allow_non_unique_does_not_waive_the_rule_between_the_options():
    _values, problems = settings.desired_values("enabled", "/var/d/%p", "s3://bkt/x", allow_non_unique=True)
    assert any("missing %p" in p for p in problems), problems


def test_a_more_unique_s3_prefix_is_accepted():
    _values, problems = settings.desired_values("enabled", "/var/d/dt-%d-cid-%c", "s3://bkt/n/%d-%c-%p")
    assert problems == []


@pytest.mark.parametrize(
    ("local_dir", "inside"),
    [
        ("/var/lib/neuron-core-dump/dumps/dt-%d-cid-%c", True),
        ("/var/lib/neuron-core-dump/dumps/%d/%c", True),
        ("/var/lib/neuron-core-dump/dumps", True),  # no variable: the root itself
        ("/var/lib/neuron-core-dump/dumps-%d-%c", False),  # beside the root, not in it
        ("/scratch/dumps/dt-%d-cid-%c", False),
        ("/tmp/neuron-core-dump/x/%d-%c", True),
    ],
)
def test_local_dir_below_roots(local_dir, inside):
    roots = ["/var/lib/neuron-core-dump/dumps", "/tmp/neuron-core-dump"]
    assert settings.local_dir_below_roots(local_dir, roots) is inside
