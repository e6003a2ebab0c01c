# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the neuron_dump role uses to let root decide where root writes.

Both call module_utils.s3_prefix, the one implementation of the S3 prefix rules.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.neuron_ops.core_dump.plugins.module_utils import s3_prefix


def s3_allow_list(prefixes):
    """``{buckets, prefixes}`` that admit every expansion of ``prefixes`` and nothing wider.

    ``prefixes`` is one S3 prefix or a list of them; an empty one adds nothing.
    """
    result = {"buckets": [], "prefixes": []}
    for prefix in [prefixes] if isinstance(prefixes, str) else prefixes or []:
        if not prefix:
            continue
        if not isinstance(prefix, str):
            raise AnsibleFilterError("s3_allow_list: expected an s3://bucket/key prefix, got %r" % (prefix,))
        problems = s3_prefix.problems(prefix, require_unique=False)
        if problems:
            raise AnsibleFilterError("s3_allow_list: invalid S3 prefix %r: %s" % (prefix, "; ".join(problems)))
        bucket, _key = s3_prefix.split(prefix)
        for key, value in (("buckets", bucket), ("prefixes", s3_prefix.static_prefix(prefix))):
            if value not in result[key]:
                result[key].append(value)
    return result


def s3_url_problems(url):
    """Every rule an allow-list entry ``s3://bucket/literal-key-prefix`` breaks (empty: fine)."""
    if not isinstance(url, str):
        return ["%r is not a string" % (url,)]
    found = s3_prefix.literal_url_problems(url)
    return ["%s: %s" % (url, problem) for problem in found]


def s3_allowed_by(prefix, buckets, prefixes):
    """Whether every expansion of ``prefix`` passes the allow-lists (empty lists: no restriction)."""
    return s3_prefix.allowed_by(prefix, list(buckets or []), list(prefixes or []))


class FilterModule:
    """s3_allow_list, s3_url_problems and s3_allowed_by."""

    def filters(self):
        return {"s3_allow_list": s3_allow_list, "s3_url_problems": s3_url_problems, "s3_allowed_by": s3_allowed_by}
