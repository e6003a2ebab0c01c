# Copyright: contributors to neuron_ops.core_dump
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn the core_dump options into the values every target must carry.

All validation happens here, before anything is written: one message per broken
rule, each naming the option and the rule.
"""

from __future__ import annotations

import posixpath

from ansible_collections.neuron_ops.core_dump.plugins.module_utils import contract, patterns, s3_prefix, values


def local_dir_problems(local_dir, allow_non_unique=False):
    """Messages for every rule ``local_dir`` breaks, each prefixed with the option name."""
    found = []
    if not local_dir:
        return ["local_dir: must not be empty with state=enabled (use state=disabled to turn dumps off)"]
    if not local_dir.startswith("/"):
        found.append(
            "local_dir: must be an absolute path (got %r); the runtime does not resolve relative paths" % local_dir
        )
    if ".." in local_dir.split("/"):
        found.append("local_dir: must not contain '..' path components (got %r)" % local_dir)
    unsafe = values.unsafe_characters(local_dir)
    if unsafe:
        found.append("local_dir: unsafe characters: %s" % ", ".join(unsafe))
    found.extend("local_dir: " + p.message for p in patterns.problems(local_dir, require_unique=not allow_non_unique))
    worst = patterns.max_expanded_length(local_dir) + 1 + contract.FILENAME_CAP
    if worst > contract.EXPANDED_DIR_CAP:
        found.append(
            "local_dir: too long: expanded, plus a file name, it can reach %d bytes; the runtime truncates "
            "directories at %d bytes" % (worst, contract.EXPANDED_DIR_CAP)
        )
    if posixpath.normpath(patterns.literal_prefix(local_dir)) == "/":
        found.append(
            "local_dir: must have a fixed base directory before the first variable (got %r); dumps would land "
            "directly in '/'" % local_dir
        )
    return found


def s3_prefix_problems(prefix, allow_non_unique=False):
    """Messages for every rule ``prefix`` breaks, each prefixed with the option name."""
    found = []
    unsafe = values.unsafe_characters(prefix)
    if unsafe:
        found.append("s3_prefix: unsafe characters: %s" % ", ".join(unsafe))
    found.extend("s3_prefix: " + msg for msg in s3_prefix.problems(prefix, require_unique=not allow_non_unique))
    return found


def desired_values(state, local_dir, s3, allow_non_unique=False):
    """(values, problems) for a state.

    ``values`` maps each managed variable to the string every target must hold;
    a variable missing from it is left unset. ``None`` means "remove everything"
    (state=absent). ``problems`` lists messages; non-empty means write nothing.
    """
    if state == "absent":
        return None, []
    if state == "disabled":
        # The documented method: both variables set to the empty string.
        return {contract.LOCAL_DIR_VAR: "", contract.S3_PREFIX_VAR: ""}, []
    found = local_dir_problems(local_dir, allow_non_unique)
    wanted = {contract.LOCAL_DIR_VAR: local_dir}
    if s3:
        found.extend(s3_prefix_problems(s3, allow_non_unique))
        found.extend(uniqueness_problems(local_dir, s3))
        wanted[contract.S3_PREFIX_VAR] = s3
    return wanted, found


def uniqueness_problems(local_dir, prefix):
    """The rule between the two options (not waived by allow_non_unique: it loses data)."""
    _bucket, key = s3_prefix.split(prefix)
    if key is None or not local_dir:
        return []
    problem = patterns.at_least_as_unique(local_dir, key)
    return [] if problem is None else ["s3_prefix: " + problem.message]


def local_dir_below_roots(local_dir, roots):
    """Whether every expansion of ``local_dir`` lies in one of ``roots`` (the hook's dump roots)."""
    # with a variable every expansion lies strictly below the storage root; without, it is the path
    fixed = patterns.storage_root(local_dir)[0] if "%" in local_dir else local_dir
    fixed = posixpath.normpath(fixed or "/")
    for root in roots:
        root = posixpath.normpath(str(root))
        if fixed == root or fixed.startswith(root.rstrip("/") + "/"):
            return True
    return False


def local_dir_warnings(local_dir):
    """Advice that does not block the write."""
    if local_dir.startswith("/tmp/") or local_dir.startswith("/var/tmp/"):
        return [
            "local_dir %r is under a world-writable temporary directory: other users can pre-create or "
            "symlink the dump path, and tmp cleaners may delete dumps before upload" % local_dir
        ]
    return []
