"""Puts a versioned bucket back as it was at a point in time: every object whose newest version
at or before that time differs from its current one (overwritten or deleted since) gets that
version copied back as its current one (content is compared by ETag, so a second run changes nothing); objects created after that time are deleted (a delete
marker, so their versions stay). Runs in the restore Job with the S3 keys of a user that may
write the bucket (AWS_* variables), and prints one line per object it changed.

    python restore_objects.py <bucket> <ISO 8601 time, UTC> [prefix]
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import boto3


def restore(client, bucket, when, prefix=""):
    changed = []
    newest = {}
    current = {}
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        entries = [(v, False) for v in page.get("Versions", [])] + [(m, True) for m in page.get("DeleteMarkers", [])]
        for entry, marker in entries:
            key = entry["Key"]
            if entry["IsLatest"]:
                current[key] = (entry.get("ETag"), marker)
            if entry["LastModified"] <= when:
                best = newest.get(key)
                if best is None or entry["LastModified"] > best[1]:
                    newest[key] = (entry["VersionId"], entry["LastModified"], marker, entry.get("ETag"))
    for key in sorted(set(current) | set(newest)):
        then = newest.get(key)
        now = current.get(key)
        if then is None or then[2]:
            # Absent at that time: created later, so hide it unless it is already deleted.
            if now and not now[1]:
                client.delete_object(Bucket=bucket, Key=key)
                changed.append(f"removed {key} (created after {when.isoformat()})")
        elif now is None or now[1] or now[0] != then[3]:
            # Deleted or overwritten since (a copy back has the same content, so the same ETag).
            client.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key, "VersionId": then[0]})
            changed.append(f"restored {key} (version {then[0]})")
    return changed


def main(argv):
    bucket, when = argv[1], datetime.fromisoformat(argv[2].replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    prefix = argv[3] if len(argv) > 3 else ""
    changes = restore(boto3.client("s3"), bucket, when, prefix)
    for line in changes:
        print(line)
    print(f"{bucket}: {len(changes)} object(s) put back as of {when.isoformat()}")


if __name__ == "__main__":
    main(sys.argv)
