"""What the demo shows and checks in its local S3 (moto): listings, waiting for a manifest.

    s3view.py snapshot  --bucket B --prefix P --out FILE        keys present now
    s3view.py wait      --bucket B --prefix P --since FILE --timeout S
                        exit 0 when a new key ending in -manifest.json appears, 1 on timeout
    s3view.py show      --bucket B --prefix P --since FILE       new objects: key, size, SSE; the manifest
    --origin host|container (wait, show): only dumps of host processes, or only dumps the uploader
                        adopted from a workload container (their keys end in /containers/<id>/...);
                        show then also checks the manifest's origin and ncd-container-origin.json
    s3view.py unchanged --bucket B --prefix P --since FILE --settle S
                        exit 0 when no key appears within S seconds, 1 otherwise

Manifests are matched by their suffix (``-manifest.json``), not by an exact name.
The endpoint comes from NCD_BED_S3; credentials are the bed's dummy ones.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "bed"))
from bed_s3 import client  # the bed's S3 endpoint and dummy credentials)

MANIFEST_SUFFIX = "-manifest.json"
ORIGIN_FILE = "ncd-container-origin.json"  # what the uploader adds to an adopted dump
CONTAINER_SEGMENT = "/containers/"  # the uploader appends /containers/<attribution id> to the prefix


def keys(s3, bucket, prefix):
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["Size"]
    return found


def since(path):
    with open(path, encoding="utf-8") as handle:
        return set(json.load(handle))


def of_origin(key, origin):
    return origin == "any" or (CONTAINER_SEGMENT in key) == (origin == "container")


def new_keys(s3, args):
    before = since(args.since)
    found = keys(s3, args.bucket, args.prefix).items()
    return {k: v for k, v in found if k not in before and of_origin(k, getattr(args, "origin", "any"))}


def snapshot(s3, args):
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(sorted(keys(s3, args.bucket, args.prefix)), handle)
    return 0


def wait(s3, args):
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        manifests = [k for k in new_keys(s3, args) if k.endswith(MANIFEST_SUFFIX)]
        if manifests:
            print(manifests[0])
            return 0
        time.sleep(1)
    print("no new *%s under s3://%s/%s after %d s" % (MANIFEST_SUFFIX, args.bucket, args.prefix, args.timeout))
    return 1


def show(s3, args):
    """New objects grouped by dump directory, with size and SSE; then the manifest, checked.

    Fails when nothing is new, an object is not encrypted, or a manifest does not list
    exactly the other objects of its directory with their sizes.
    """
    fresh = new_keys(s3, args)
    problems = [] if fresh else ["no new object"]
    by_dir = {}
    for key, size in fresh.items():
        directory, _sep, name = key.rpartition("/")
        by_dir.setdefault(directory, {})[name] = size
    for directory, objects in sorted(by_dir.items()):
        print("s3://%s/%s/" % (args.bucket, directory))
        width = max(len(name) for name in objects)
        for name, size in sorted(objects.items()):
            sse = s3.head_object(Bucket=args.bucket, Key=directory + "/" + name).get("ServerSideEncryption")
            print("  %-*s %9d B  SSE %s" % (width, name, size, sse or "NONE"))
            if not sse:
                problems.append("%s is not encrypted" % name)
        for name in sorted(n for n in objects if n.endswith(MANIFEST_SUFFIX)):
            body = s3.get_object(Bucket=args.bucket, Key=directory + "/" + name)["Body"].read()
            manifest = json.loads(body)
            listed = {item["name"]: item["size"] for item in manifest["files"]}
            others = {n: v for n, v in objects.items() if not n.endswith(MANIFEST_SUFFIX)}
            print(
                "  manifest %s (%s): %d files, %d B, sha256 for each; written %s by %s"
                % (
                    name,
                    manifest.get("schema"),
                    len(listed),
                    sum(listed.values()),
                    manifest.get("written"),
                    manifest.get("hostname"),
                )
            )
            if listed != others:
                problems.append("manifest %s does not match the objects next to it" % name)
            if args.origin == "container":
                problems += container_origin(manifest, name, others)
    for problem in problems:
        print("PROBLEM: " + problem)
    return 1 if problems else 0


def container_origin(manifest, name, others):
    """Print where an adopted dump came from; what is missing for it to name its container."""
    found = manifest.get("origin") or {}
    print(
        "  origin: %s %s, hostname %s, runtime %s, attribution %s"
        % (
            found.get("kind"),
            (found.get("container_id") or "?")[:12],
            found.get("hostname"),
            found.get("runtime"),
            found.get("attribution"),
        )
    )
    problems = []
    if found.get("kind") != "container" or found.get("attribution") != "enforced" or not found.get("container_id"):
        problems.append("manifest %s does not name the container the dump came from" % name)
    if ORIGIN_FILE not in others:
        problems.append("no %s next to manifest %s" % (ORIGIN_FILE, name))
    return problems


def unchanged(s3, args):
    time.sleep(args.settle)
    fresh = new_keys(s3, args)
    if fresh:
        print("unexpected new objects: %s" % ", ".join(sorted(fresh)))
        return 1
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("snapshot", "wait", "show", "unchanged"))
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--since")
    parser.add_argument("--out")
    parser.add_argument("--timeout", type=int, default=120)
    parser.add_argument("--settle", type=int, default=10)
    parser.add_argument("--origin", choices=("any", "host", "container"), default="any")
    args = parser.parse_args()
    commands = {"snapshot": snapshot, "wait": wait, "show": show, "unchanged": unchanged}
    return commands[args.command](client(), args)


if __name__ == "__main__":
    sys.exit(main())
