"""Object storage as the platform's services see it: one user and one policy per
consuming service, bucket lifecycle rules, and the Secrets that carry each
service's credentials into its namespace.

The S3 policy documents follow the AWS IAM policy grammar MinIO implements
(Version 2012-10-17; s3:* actions on arn:aws:s3::: resources). A service gets
exactly the buckets its entry names, read or readwrite, nothing else; a grant
of "bucket/prefix" gives the objects under that prefix only (and the listing
of the bucket's names, which the backup tools' bucket checks need).

A bucket with object lock (the backups bucket, lock_days > 0) gets a default retention: MinIO
then refuses every upload that does not carry the right to set a retention (it gives the new
version the bucket's), so its writers also get s3:PutObjectRetention on what they may write.
That lets a writer lock its own uploads longer, never shorten a lock or lift one (that needs
s3:BypassGovernanceRetention, which no service gets).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

ACCESS = ("read", "readwrite")
READ_OBJECT = ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging"]
WRITE_OBJECT = [
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]
READ_BUCKET = ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation"]
WRITE_BUCKET = ["s3:ListBucketMultipartUploads"]
# MinIO (cmd/bucket-object-lock.go checkPutObjectLockAllowed): with a default retention on the
# bucket, PutObject, CopyObject and multipart uploads need this action.
WRITE_LOCKED = ["s3:PutObjectRetention"]
LOCK_MODES = ("governance", "compliance")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
USER_NAME = re.compile(r"^[a-z][a-z0-9-]{2,31}$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PREFIX = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$")


def split_grant(grant):
    """(bucket, prefix or "") of a grant key: "bucket" or "bucket/prefix"."""
    bucket, _, prefix = str(grant).partition("/")
    return bucket, prefix


def problems(users, buckets):
    """What is wrong with the service users and buckets, each naming the variable and the fix."""
    found = []
    bucket_names = [b.get("name") if isinstance(b, Mapping) else None for b in buckets or []]
    for name in bucket_names:
        if not isinstance(name, str) or not BUCKET_NAME.match(name) or ".." in name:
            found.append(f"platform_buckets: {name!r} is not a valid S3 bucket name (3-63 lower-case letters, digits, dots and hyphens).")
    if not isinstance(users, Mapping):
        return found + ["platform_object_store_users must be a mapping of service name to {namespace, buckets}."]
    for user, spec in sorted(users.items()):
        where = f"platform_object_store_users.{user}"
        if not USER_NAME.match(str(user)):
            found.append(f"{where}: the name must be 3-32 lower-case letters, digits and hyphens, starting with a letter (it is the access key).")
        if not isinstance(spec, Mapping):
            found.append(f"{where}: must be {{namespace, buckets}}.")
            continue
        if not DNS1123_LABEL.match(str(spec.get("namespace", ""))):
            found.append(f"{where}.namespace: {spec.get('namespace')!r} is not a namespace name.")
        grants = spec.get("buckets")
        if not isinstance(grants, Mapping) or not grants:
            found.append(f"{where}.buckets: must map at least one bucket to read or readwrite.")
            continue
        for grant, access in sorted(grants.items()):
            bucket, prefix = split_grant(grant)
            if bucket not in bucket_names:
                found.append(f"{where}.buckets: bucket {bucket!r} is not one of platform_buckets ({', '.join(map(str, bucket_names))}). Fix: correct the name or add the bucket.")
            if prefix and not PREFIX.match(prefix):
                found.append(f"{where}.buckets: {grant!r}: the prefix after the bucket must be path segments of lower-case letters, digits, '.', '_' and '-', such as {bucket}/postgres.")
            if access not in ACCESS:
                found.append(f"{where}.buckets.{grant}: {access!r} is not read or readwrite.")
    return found + write_overlaps(users)


def write_scopes(grants):
    """[(bucket, prefix)] a service may write: its readwrite grants ("" for the whole bucket)."""
    return [split_grant(grant) for grant, access in sorted((grants or {}).items()) if access == "readwrite"]


def _overlap(one, other):
    """Whether two write scopes (bucket, prefix) reach a common object."""
    (bucket, prefix), (bucket2, prefix2) = one, other
    if bucket != bucket2:
        return False
    a, b = (prefix + "/") if prefix else "", (prefix2 + "/") if prefix2 else ""
    return a.startswith(b) or b.startswith(a)


def write_overlaps(users):
    """Two services that may write the same objects: one could overwrite or delete what the
    other keeps (a backup, a model). Each write scope must be one service's only."""
    found = []
    scopes = [(user, scope) for user, spec in sorted((users or {}).items()) if isinstance(spec, Mapping) and isinstance(spec.get("buckets"), Mapping)
              for scope in write_scopes(spec["buckets"])]
    for i, (user, scope) in enumerate(scopes):
        for other, other_scope in scopes[i + 1:]:
            if other != user and _overlap(scope, other_scope):
                where = lambda s: "/".join(filter(None, s))  # noqa: E731
                found.append(
                    f"platform_object_store_users: {user} and {other} may both write {where(scope) if len(scope[1]) >= len(other_scope[1]) else where(other_scope)}"
                    f" ({user}: {where(scope)}, {other}: {where(other_scope)}), so either could overwrite or delete what the other keeps."
                    f" Fix: give each its own bucket or prefix (bucket/prefix: readwrite), and the other read."
                )
    return found


def policy(grants, locked=()):
    """The S3 policy granting a service its buckets or prefixes (read or readwrite): the
    bucket-level actions on each bucket it has a grant in, the object actions on the whole
    bucket, or on bucket/prefix/* only for a prefix grant; where it may write into a bucket of
    `locked` (buckets with a default retention), the right to upload into it (PutObjectRetention)."""
    statements = []
    for access in ACCESS:
        granted = sorted(split_grant(g) for g, a in grants.items() if a == access)
        if not granted:
            continue
        writes = access == "readwrite"
        statements.append(
            {
                "Effect": "Allow",
                "Action": READ_BUCKET + (WRITE_BUCKET if writes else []),
                "Resource": sorted({f"arn:aws:s3:::{bucket}" for bucket, _ in granted}),
            }
        )
        statements.append(
            {
                "Effect": "Allow",
                "Action": READ_OBJECT + (WRITE_OBJECT if writes else []),
                "Resource": [f"arn:aws:s3:::{bucket}/{prefix + '/' if prefix else ''}*" for bucket, prefix in granted],
            }
        )
        retained = [(bucket, prefix) for bucket, prefix in granted if writes and bucket in locked]
        if retained:
            statements.append(
                {
                    "Effect": "Allow",
                    "Action": list(WRITE_LOCKED),
                    "Resource": [f"arn:aws:s3:::{bucket}/{prefix + '/' if prefix else ''}*" for bucket, prefix in retained],
                }
            )
    return {"Version": "2012-10-17", "Statement": statements}


def policies(users, locked=()):
    """{policy name: policy document}, one per service; the policy is named after the service."""
    return {f"platform-{user}": policy(spec["buckets"], locked) for user, spec in sorted(users.items())}


def backups_bucket(buckets, name, retention_days=30, mode="governance", noncurrent_days=30):
    """The bucket list with the backups bucket `name` protected: object lock with a default
    retention of retention_days in mode (0: no lock), encrypted at rest (SSE-S3, with the
    tenant's KMS key), and its old versions kept until the lock has ended (never sooner than
    the other buckets', and never expired where those are kept for ever, noncurrent_days 0)."""
    days = int(retention_days)
    protected = []
    for bucket in buckets:
        bucket = dict(bucket)
        if bucket.get("name") == name:
            bucket.update(lock_days=days, lock_mode=str(mode), encryption="sse-s3")
            if days > 0:
                keep = int(bucket.get("noncurrent_expire_days", noncurrent_days))
                bucket["noncurrent_expire_days"] = 0 if keep == 0 else max(keep, days)
        protected.append(bucket)
    return protected


def locked_buckets(buckets):
    """Names of the buckets with a default retention (lock_days > 0)."""
    return sorted(b["name"] for b in buckets if int(b.get("lock_days") or 0) > 0)


def lifecycle(bucket, scratch_prefix="scratch/", scratch_days=7, noncurrent_days=30):
    """The bucket's lifecycle: scratch objects expire, and old versions of every object expire
    (versioning keeps them until then), both as S3 lifecycle rules."""
    rules = []
    prefix = bucket.get("scratch_prefix", scratch_prefix)
    days = int(bucket.get("scratch_expire_days", scratch_days))
    if prefix and days > 0:
        rules.append({"ID": "expire-scratch", "Status": "Enabled", "Filter": {"Prefix": prefix}, "Expiration": {"Days": days}})
    keep = int(bucket.get("noncurrent_expire_days", noncurrent_days))
    if keep > 0:
        rules.append({"ID": "expire-noncurrent-versions", "Status": "Enabled", "Filter": {"Prefix": ""}, "NoncurrentVersionExpiration": {"NoncurrentDays": keep}})
    return {"Rules": rules}


def setup_files(users, buckets, scratch_prefix="scratch/", scratch_days=7, noncurrent_days=30):
    """The files the MinIO setup job reads (a ConfigMap's data): the bucket list, one
    lifecycle and one policy JSON per bucket and service, and the service-to-policy map; for
    the buckets that say so, their object lock ("locked": bucket, mode and days of the default
    retention, or "off 0" for none) and their default encryption ("encrypted": bucket and
    sse-s3)."""
    data = {
        "buckets": "".join(f"{b['name']} {'on' if b.get('versioning', True) else 'off'}\n" for b in buckets),
        "users": "".join(f"{user} platform-{user}\n" for user in sorted(users)),
    }
    locked = "".join(
        f"{b['name']} {b.get('lock_mode', 'governance') if int(b['lock_days']) > 0 else 'off'} {int(b['lock_days'])}\n"
        for b in buckets if "lock_days" in b
    )
    encrypted = "".join(f"{b['name']} {b['encryption']}\n" for b in buckets if b.get("encryption"))
    if locked:
        data["locked"] = locked
    if encrypted:
        data["encrypted"] = encrypted
    for bucket in buckets:
        data[f"lifecycle-{bucket['name']}.json"] = json.dumps(lifecycle(bucket, scratch_prefix, scratch_days, noncurrent_days), sort_keys=True)
    for name, document in policies(users, locked_buckets(buckets)).items():
        data[f"policy-{name}.json"] = json.dumps(document, sort_keys=True)
    return data


def service_secrets(users, credentials, endpoint, region, name_format="object-store-{user}", layer="storage"):
    """One Secret per service in its namespace: AWS-style keys the S3 SDKs (boto3, MLflow, Argo,
    KServe's storage initializer) read, with the endpoint and KServe's S3 annotations. layer: the
    layer that delivers them (its label: direct mode prunes by it)."""
    https = str(endpoint).startswith("https://")
    host = re.sub(r"^https?://", "", str(endpoint)).rstrip("/")
    docs = []
    for user, spec in sorted(users.items()):
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {
                    "name": name_format.format(user=user),
                    "namespace": spec["namespace"],
                    "labels": {"app.kubernetes.io/part-of": "ml-platform", "platform.ml/layer": layer, "platform.ml/object-store-user": user},
                    "annotations": {
                        "serving.kserve.io/s3-endpoint": host,
                        "serving.kserve.io/s3-usehttps": "1" if https else "0",
                        "serving.kserve.io/s3-region": str(region),
                        "serving.kserve.io/s3-useanoncredential": "false",
                    },
                },
                "stringData": {
                    "AWS_ACCESS_KEY_ID": credentials[user]["access_key"],
                    "AWS_SECRET_ACCESS_KEY": credentials[user]["secret_key"],
                    "AWS_ENDPOINT_URL": str(endpoint),
                    "AWS_REGION": str(region),
                    "MLFLOW_S3_ENDPOINT_URL": str(endpoint),
                },
            }
        )
    return docs


def credential_entries(users, store="minio"):
    """The fields platform_credentials keeps: with MinIO, the root user and a user per service
    whose access key is the service's name, all secret keys generated; with an external store,
    each service's access and secret key, both supplied by the operator."""
    minio = store == "minio"
    entries = {user: {"access_key": user if minio else None, "secret_key": None} for user in users}
    if minio:
        entries["root"] = {"access_key": "platform-root", "secret_key": None}
    return entries


def revoked_users(kept, users):
    """The MinIO users the declaration no longer has: the credentials file's entries the storage
    layer's credentials task did not ask for (its result's kept), the second site's keys
    (replication, asked for by their own task) aside. A team taken out of platform_teams, a
    service user removed: the setup job removes each, with its policy. The tenant's KMS key (kms)
    is no user either."""
    return sorted(name for name in kept or [] if name not in users and name not in ("root", "replication", "kms"))


def secret_keys(credentials, users):
    """{service: secret key}: the file per service user the setup job reads."""
    return {user: credentials[user]["secret_key"] for user in sorted(users)}


class FilterModule:
    def filters(self):
        return {
            "storage_object_store_problems": problems,
            "storage_object_store_policies": policies,
            "storage_object_store_lifecycle": lifecycle,
            "storage_object_store_setup_files": setup_files,
            "storage_object_store_secrets": service_secrets,
            "storage_object_store_credential_entries": credential_entries,
            "storage_object_store_secret_keys": secret_keys,
            "storage_object_store_revoked_users": revoked_users,
            "storage_object_store_backups_bucket": backups_bucket,
        }
