"""Root decides where root writes: the uploader's refusals, checked before anything is read or sent.

- :func:`check_uid`: ``uploader.allowed_uids`` / ``allowed_groups`` (default: everyone);
- :func:`target`: the S3 prefix an entry names, parsed and checked against
  ``s3.allowed_buckets`` and ``s3.allowed_prefixes`` (the role sets both from the
  configured ``s3_prefix``);
- :func:`open_dump`: the dump dir, opened without following symlinks, only below a
  configured dump root, and only when owned by the uid that wrote the entry (or root).

:class:`Refused` means "never uploadable" (a security refusal: logged as an error);
:class:`PolicyRefused` means "refused by configuration or by S3" (bucket/prefix/uid not
allowed, bucket missing): the dump stays local, is counted and listed by ``status``, and
the uploader stays healthy.
"""

import grp
import os
import pwd

from . import config, fsutil, keys, s3


class Refused(Exception):
    """An entry that can never be uploaded (a security refusal: outside roots, foreign owner)."""


class PolicyRefused(Refused):
    """Refused by configuration or by S3 (bucket/prefix/uid not allowed, bucket missing): kept local."""


def check_uid(settings, uid):
    """PolicyRefused unless ``uid`` may have its dumps uploaded (``settings``: the uploader section)."""
    uids, groups = settings["allowed_uids"], settings["allowed_groups"]
    if not uids and not groups:
        return
    if uid in uids:
        return
    if groups and _in_groups(uid, groups):
        return
    raise PolicyRefused("uid %d is not in uploader.allowed_uids / allowed_groups" % uid)


def target(settings, prefix):
    """(bucket, key prefix) of an allowed S3 prefix, or PolicyRefused (``settings``: the s3 section)."""
    try:
        bucket, key_prefix = s3.parse_url(prefix)
        keys.check_prefix_room(key_prefix)
    except ValueError as exc:
        raise PolicyRefused(str(exc)) from None
    if settings["allowed_buckets"] and bucket not in settings["allowed_buckets"]:
        raise PolicyRefused("bucket %s is not in s3.allowed_buckets" % bucket)
    allowed = [s3.parse_url(url) for url in settings["allowed_prefixes"]]
    if allowed and not config.prefix_allowed(bucket, key_prefix, allowed):
        raise PolicyRefused("s3://%s/%s is not below any of s3.allowed_prefixes" % (bucket, key_prefix))
    return bucket, key_prefix


def open_dump(dump_roots, dump_dir, uid):
    """(fd, stat) of ``dump_dir``, opened without following any symlink; Refused otherwise."""
    root = fsutil.find_root(dump_dir, dump_roots)
    if root is None:
        raise Refused("not below a configured dump root")
    parts = fsutil.split_components(dump_dir)
    relative = parts[len(fsutil.split_components(root)) :]
    if not relative:
        raise Refused("is a dump root itself, not a dump dir below it")
    try:
        root_fd = fsutil.walk(root)
    except fsutil.UnsafePathError as exc:
        raise Refused("dump root: %s" % exc.strerror) from None
    try:
        dump_fd = fsutil.walk_below(root_fd, relative)
    except fsutil.UnsafePathError as exc:
        raise Refused("%s (%s)" % (exc.strerror, exc.filename)) from None
    finally:
        os.close(root_fd)
    info = os.fstat(dump_fd)
    if uid not in (0, info.st_uid):
        os.close(dump_fd)
        raise Refused("dump dir owned by uid %d, entry written by uid %d" % (info.st_uid, uid))
    return dump_fd, info


def _in_groups(uid, allowed):
    try:
        user = pwd.getpwuid(uid)
    except KeyError:
        return False
    gids = {user.pw_gid}
    names = set()
    for group in grp.getgrall():
        if user.pw_name in group.gr_mem or group.gr_gid == user.pw_gid:
            gids.add(group.gr_gid)
            names.add(group.gr_name)
    return any((item in gids) if isinstance(item, int) else (item in names) for item in allowed)
