"""Config: every key optional, defaults in code, errors name the key and the rule."""

import json
import os

import pytest
import scratch_install
from neuron_core_dump import config

BEGIN, END = "<!-- config-table:begin -->", "<!-- config-table:end -->"


def test_empty_and_missing_file_give_defaults(tmp_path):
    assert config.read(str(tmp_path / "missing.json")) == config.defaults()
    (tmp_path / "empty.json").write_text("{}")
    assert config.read(str(tmp_path / "empty.json")) == config.defaults()
    (tmp_path / "blank.json").write_text("\n")
    assert config.read(str(tmp_path / "blank.json")) == config.defaults()


def test_defaults_match_the_documented_layout():
    defaults = config.defaults()
    assert defaults["dump_roots"] == ["/var/lib/neuron-core-dump/dumps", "/tmp/neuron-core-dump"]
    assert defaults["spool_dir"] == "/var/spool/neuron-core-dump"
    assert defaults["state_dir"] == "/var/lib/neuron-core-dump"
    assert defaults["hook"]["vendor_path"] == "/opt/aws/neuron/bin/neuron-dump.distrib"
    assert defaults["hook"]["dir_mode"] == 0o700 and defaults["hook"]["root_mode"] == 0o1733
    assert defaults["s3"]["verify_tls"] is True and defaults["s3"]["sse"] == "AES256"


def test_every_default_key_is_documented():
    doc = config.document()
    for section, keys in config.DEFAULTS.items():
        if isinstance(keys, dict):
            assert "### `%s`" % section in doc
            for key in keys:
                assert "| `%s` |" % key in doc, "%s.%s is not documented" % (section, key)
        else:
            assert "| `%s` |" % section in doc


def test_docs_configuration_md_is_the_table():
    """docs/configuration.md holds config.document() between its markers; NCD_WRITE_DOCS=1 rewrites it."""
    path = os.path.join(scratch_install.REPO_ROOT, "docs", "configuration.md")
    with open(path) as handle:
        text = handle.read()
    head, _rest = text.split(BEGIN)
    _old, tail = text.split(END)
    current = "%s%s\n%s\n%s%s" % (head, BEGIN, config.document().strip("\n"), END, tail)
    if os.environ.get("NCD_WRITE_DOCS") == "1":
        with open(path, "w") as handle:
            handle.write(current)
    assert text == current, "docs/configuration.md is stale: NCD_WRITE_DOCS=1 pytest -k docs_configuration_md"


def test_a_role_written_file_round_trips(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "dump_roots": ["/data/dumps/"],
                "hook": {"dir_mode": "0750", "vendor_timeout_seconds": 30},
                "s3": {"sse": "aws:kms", "kms_key_id": "alias/dumps", "expected_bucket_owner": "123456789012"},
                "capture": {"commands": [{"name": "ls", "argv": ["/bin/ls"], "timeout_seconds": 3}]},
            },
            indent=4,
        )
    )
    loaded = config.read(str(path))
    assert loaded["dump_roots"] == ["/data/dumps"]
    assert loaded["hook"]["dir_mode"] == 0o750
    assert loaded["hook"]["budget_seconds"] == 10  # untouched keys keep their defaults
    assert loaded["s3"]["kms_key_id"] == "alias/dumps"


@pytest.mark.parametrize(
    ("data", "key", "rule"),
    [
        ({"dump_roots": ["relative"]}, "dump_roots[0]", "absolute path"),
        ({"dump_roots": []}, "dump_roots", "non-empty list"),
        ({"spool_dir": "/a/../b"}, "spool_dir", "'..'"),
        ({"hook": {"vendor_timeout_seconds": 0}}, "hook.vendor_timeout_seconds", "> 0"),
        ({"hook": {"vendor_timeout_seconds": True}}, "hook.vendor_timeout_seconds", "number"),
        ({"hook": {"dir_mode": "0600"}}, "hook.dir_mode", "0700"),
        ({"hook": {"dir_mode": "rwx"}}, "hook.dir_mode", "octal"),
        ({"hook": {"log_stderr": "loud"}}, "hook.log_stderr", "one of"),
        ({"hook": {"typo": 1}}, "hook.typo", "unknown key"),
        ({"bogus": 1}, "bogus", "unknown key"),
        ({"uploader": {"trigger": "cron"}}, "uploader.trigger", "one of"),
        ({"s3": {"verify_tls": False}}, "s3.verify_tls", "endpoint_url"),
        ({"s3": {"kms_key_id": "k"}}, "s3.kms_key_id", "aws:kms"),
        ({"s3": {"expected_bucket_owner": 123456789012}}, "s3.expected_bucket_owner", "12-digit"),
        ({"s3": {"endpoint_url": "ftp://x"}}, "s3.endpoint_url", "http"),
        ({"s3": {"multipart_chunk_bytes": 1024}}, "s3.multipart_chunk_bytes", ">= 5242880"),
        ({"s3": {"allowed_buckets": ["Bad_Bucket"]}}, "s3.allowed_buckets[0]", "bucket name"),
        ({"s3": {"max_concurrency": 0}}, "s3.max_concurrency", ">= 1"),
        ({"s3": {"selftest_prefix": "bucket/x"}}, "s3.selftest_prefix", "s3://"),
        ({"capture": {"commands": [{"name": "x", "argv": ["ls"]}]}}, "capture.commands[0].argv", "absolute"),
        ({"capture": {"commands": [{"name": "a b", "argv": ["/bin/ls"]}]}}, "capture.commands[0].name", "letters"),
        (
            {"capture": {"commands": [{"name": "x", "argv": ["/bin/ls"], "env": {}}]}},
            "capture.commands[0].env",
            "unknown",
        ),
        ({"retention": {"hard_max_bytes": 1, "max_bytes": 2}}, "retention.hard_max_bytes", ">= retention.max_bytes"),
        ({"retention": {"keep_free_bytes": 1, "hard_keep_free_bytes": 2}}, "retention.hard_keep_free_bytes", "<="),
        ({"hook": []}, "hook", "JSON object"),
        ([], "(top level)", "JSON object"),
    ],
)
def test_errors_name_the_key_and_the_rule(data, key, rule):
    with pytest.raises(config.ConfigError) as caught:
        config.validate(data)
    assert caught.value.key == key
    assert rule in caught.value.rule


def test_verify_tls_off_is_allowed_with_an_explicit_endpoint():
    loaded = config.validate({"s3": {"verify_tls": False, "endpoint_url": "https://s3.test:9000"}})
    assert loaded["s3"]["verify_tls"] is False


@pytest.mark.parametrize("text", ["{", "[1,", '{"a": NaN}', "\xff\xfe"])
def test_syntax_errors_are_reported_as_file_errors(tmp_path, text):
    path = tmp_path / "config.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(config.ConfigError) as caught:
        config.read(str(path))
    assert caught.value.key == "(file)"


def test_a_directory_is_not_a_config(tmp_path):
    with pytest.raises(config.ConfigError):
        config.read(str(tmp_path))


@pytest.mark.parametrize("bucket", ["192.168.1.1", "xn--bucket", "sthree-dumps", "dumps-s3alias", "a..b", "Upper"])
def test_bucket_names_follow_the_modules_rules(bucket):
    """The host program checks buckets with module_utils' rules (bucket_name.py, one implementation)."""
    with pytest.raises(config.ConfigError):
        config.validate({"s3": {"allowed_buckets": [bucket]}})
