from __future__ import annotations

import pytest
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import patterns

EXAMPLE = patterns.EXAMPLE_VALUES


@pytest.mark.parametrize(
    ("pattern", "expanded"),
    [
        ("/base/dt-%d-cid-%c", "/base/dt-20250917-194443-cid-0000000000000000"),
        ("/b/%p/%t/%l/%i", "/b/897/897/0/i-0b514eadc4fec7de6"),
        ("/b/no-variables", "/b/no-variables"),
        # Unknown %X: the runtime writes '%' and drops X.
        ("/b/%x-%d", "/b/%-20250917-194443"),
        ("/b/%%d", "/b/%d"),
        ("/b/100%", "/b/100%"),
        ("", ""),
    ],
)
def test_expand_like_the_runtime(pattern, expanded):
    assert patterns.expand(pattern, EXAMPLE) == expanded


@pytest.mark.parametrize(
    ("pattern", "rules"),
    [
        ("/b/%d-%c", []),
        ("/b/%c/%d/%p", []),
        ("/b/%d", ["missing-unique-variables"]),
        ("/b/%c", ["missing-unique-variables"]),
        ("/b/static", ["missing-unique-variables"]),
        ("/b/%d-%c-%x", ["unknown-variable"]),
        ("/b/%d-%c%%", ["unknown-variable"]),
        ("/b/%d-%c-%", ["trailing-percent"]),
        ("/b/%D-%C", ["unknown-variable", "unknown-variable", "missing-unique-variables"]),
    ],
)
def test_problems_table(pattern, rules):
    assert [p.rule for p in patterns.problems(pattern)] == rules


def test_unknown_variable_message_says_what_the_runtime_does():
    (problem,) = patterns.problems("/b/%d-%c-%x")
    assert "'%x' is not a runtime variable" in problem.message
    assert "literal '%'" in problem.message and "drop the 'x'" in problem.message


def test_missing_unique_message_names_the_variables_and_the_escape_hatch():
    (problem,) = patterns.problems("/b/%p")
    assert "%d and %c" in problem.message and "allow_non_unique" in problem.message


def test_uniqueness_can_be_waived():
    assert patterns.problems("/b/static", require_unique=False) == []


@pytest.mark.parametrize(
    ("pattern", "root"),
    [
        ("/var/lib/x/dumps/dt-%d-cid-%c", ("/var/lib/x/dumps", "dt-")),
        ("/tmp/neuron-core-dump/dt-%d-cid-%c", ("/tmp/neuron-core-dump", "dt-")),
        ("/data/%d-%c", ("/data", "")),
        ("/%d-%c", ("/", "")),
        ("/fixed/dir", ("/fixed", "dir")),
    ],
)
def test_storage_root(pattern, root):
    assert patterns.storage_root(pattern) == root


def test_max_expanded_length_bounds_every_expansion():
    pattern = "/b/%d-%c-%p-%t-%l-%i"
    worst = patterns.max_expanded_length(pattern)
    values = {k: "9" * n for k, n in patterns.MAX_EXPANSION.items()}
    assert len(patterns.expand(pattern, values)) == worst
    assert len(patterns.expand(pattern, EXAMPLE)) <= worst


def test_variables_used_in_order():
    assert patterns.variables_used("/%c/%d/%c/%q") == ["c", "d"]


@pytest.mark.parametrize(
    ("local_dir", "key", "missing"),
    [
        ("/d/dt-%d-cid-%c", "neuron/dt-%d-cid-%c", None),
        ("/d/dt-%d-cid-%c", "neuron/%c/%d/%p", None),  # more unique in S3: allowed
        ("/d/%d-%c-%i-%p", "neuron/dt-%d-cid-%c", "%i %p"),  # the losing pair
        ("/d/%d-%c-%l", "%c/%d", "%l"),
        ("/d/static", "k/%d-%c", None),
        ("/d/%%p-%d-%c", "k/%d-%c", None),  # '%%' is a literal, not a variable
    ],
)
def test_s3_key_at_least_as_unique_as_local_dir(local_dir, key, missing):
    problem = patterns.at_least_as_unique(local_dir, key)
    if missing is None:
        assert problem is None
    else:
        assert problem.rule == "s3-prefix-less-unique-than-local-dir"
        assert "missing %s:" % missing in problem.message
        assert "at least as unique as the local dir" in problem.message
