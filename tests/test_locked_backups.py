"""A locked backup still restores. The backups bucket as the storage layer declares it (made
with object lock, the default retention of storage_backup_retention_days, its lifecycle) on
moto's S3, which implements object lock; backups written into it the way Velero and
CloudNativePG write them, with their users' keys; then a writer whose key was stolen tries to
erase them. Its deletions of versions are refused, its plain deletions only add delete markers
and its overwrites only add versions, so every backup is still in the bucket's history; the
restore path (restore.yml -e restore_backups_as_of, which runs roles/backup/files/restore_objects.py
in a Job with each writer's Secret, as here) puts them back, readable as they were.

What moto cannot show, and where it is shown instead: that the writers may not bypass the lock
or change the bucket's configuration is their policy's (tests/test_render_backup.py, no
s3:BypassGovernanceRetention or s3:PutBucketObjectLockConfiguration); that the setup job makes
the bucket this way is tests/test_minio_setup.py's; that MinIO enforces the lock as moto does is
checked in MinIO's source (docs/backup.md).

One difference of moto's is bridged: it asks a CopyObject into a bucket with a default retention
for a checksum header, as it asks PutObject; MinIO does not (CopyObjectHandler at
RELEASE.2025-04-08T15-41-24Z checks no Content-MD5), and a copy has no body to sum. The server
here adds that header to copies (restore_objects.py puts a version back with CopyObject)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import jinja2
import pytest
import yaml

from conftest import ROOT, load_script

boto3 = pytest.importorskip("boto3")
moto_app = pytest.importorskip("moto.moto_server.werkzeug_app")
ClientError = pytest.importorskip("botocore.exceptions").ClientError
from werkzeug.serving import make_server  # noqa: E402  (moto's server runs on werkzeug)

import storage_object_store as store  # noqa: E402  (plugins/filter, on the tests' path)

RESTORE_OBJECTS = ROOT / "roles" / "backup" / "files" / "restore_objects.py"
restore_objects = load_script(RESTORE_OBJECTS.relative_to(ROOT))


def defaults(role):
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())


PLATFORM, STORAGE, BACKUP = defaults("platform"), defaults("storage"), defaults("backup")
BUCKET = PLATFORM["platform_buckets"]["backups"]
# Each writer with its prefix (its grant in platform_object_store_users), and what it writes there.
WRITES = {
    "velero": {f"velero/backups/platform-20261202031500/{name}": body for name, body in (
        ("velero-backup.json", b'{"kind": "Backup", "metadata": {"name": "platform-20261202031500"}}'),
        ("platform-20261202031500.tar.gz", b"\x1f\x8b gzip of the platform's objects, its Secrets among them"),
        ("platform-20261202031500-resource-list.json.gz", b"\x1f\x8b resource list"))},
    "postgres": {f"postgres/mlflow-db/{name}": body for name, body in (
        ("base/20261202T031500/backup.info", b"backup_id=20261202T031500\nstatus=DONE\n"),
        ("base/20261202T031500/data.tar", b"base backup of MLflow's database"),
        ("wals/0000000100000000/000000010000000000000003", b"WAL segment"))},
}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copies_with_a_checksum(app):
    """moto's application, with the checksum header it wants on a copy into a locked bucket."""
    def application(environ, start_response):
        if "HTTP_X_AMZ_COPY_SOURCE" in environ:
            environ.setdefault("HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM", "CRC32")
        return app(environ, start_response)
    return application


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server, and the backups bucket made as the setup job makes it."""
    port = free_port()
    server = make_server("127.0.0.1", port, copies_with_a_checksum(moto_app.DomainDispatcherApplication(moto_app.create_backend_app)),
                         True, request_handler=moto_app.MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{port}"
    admin = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="platform-root", aws_secret_access_key="x", region_name="us-east-1")
    buckets = store.backups_bucket([{"name": BUCKET, "versioning": STORAGE["storage_bucket_versioning"]}], BUCKET,
                                   STORAGE["storage_backup_retention_days"], STORAGE["storage_backup_retention_mode"],
                                   STORAGE["storage_noncurrent_expire_days"])
    files = store.setup_files(PLATFORM["platform_object_store_users"], buckets, STORAGE["storage_scratch_prefix"],
                              STORAGE["storage_scratch_expire_days"], STORAGE["storage_noncurrent_expire_days"])
    (bucket, mode, days), = [line.split() for line in files["locked"].splitlines()]
    assert (bucket, mode, days) == (BUCKET, "governance", "30")
    # mc mb --with-lock; mc retention set --default <mode> <days>d; mc ilm rule import.
    admin.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    admin.put_object_lock_configuration(Bucket=BUCKET, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": mode.upper(), "Days": int(days)}}})
    admin.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration=json.loads(files[f"lifecycle-{BUCKET}.json"]))
    yield endpoint
    server.shutdown()
    thread.join()


def secret_env(endpoint, user):
    """The environment the restore Job gets from the user's Secret object-store-<user> (envFrom),
    as the storage layer builds that Secret."""
    credentials = {user: {"access_key": user, "secret_key": f"{user}-secret-key"}}
    (secret,) = store.service_secrets({user: PLATFORM["platform_object_store_users"][user]}, credentials, endpoint, "us-east-1")
    return secret["stringData"]


def client(endpoint, user):
    env = secret_env(endpoint, user)
    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])


def restore_rewinds():
    """The backups bucket's rewinds restore.yml runs with restore_backups_as_of: (user, prefix)."""
    variables = yaml.safe_load((ROOT / "roles" / "backup" / "vars" / "main.yml").read_text())
    context = {"platform_buckets": PLATFORM["platform_buckets"], "backup_prefix": BACKUP["backup_prefix"]}
    render = lambda text: jinja2.Template(text).render(context)  # noqa: E731
    return [(item["user"], render(item["prefix"])) for item in variables["__backup_restore_backups"] if render(item["bucket"]) == BUCKET]


def next_second():
    """S3 gives versions' times in whole seconds: what happens after this is after as_of."""
    time.sleep(1.05 - time.time() % 1)


def test_a_stolen_writer_key_cannot_erase_a_locked_backup_and_the_restore_path_brings_it_back(s3):
    rewinds = restore_rewinds()
    assert rewinds == [("velero", "velero/"), ("postgres", "postgres/")]
    for user, objects in WRITES.items():
        writer = client(s3, user)
        assert all(key.startswith(prefix) for key in objects for u, prefix in rewinds if u == user)
        for key, body in objects.items():
            writer.put_object(Bucket=BUCKET, Key=key, Body=body)
            # Every version gets the bucket's lock as it is written.
            head = writer.head_object(Bucket=BUCKET, Key=key)
            assert head["ObjectLockMode"] == "GOVERNANCE"
            assert head["ObjectLockRetainUntilDate"] > datetime.now(timezone.utc) + timedelta(days=29)
    next_second()
    as_of = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    next_second()

    # The stolen keys at work, each on what its user may write.
    for user, objects in WRITES.items():
        writer = client(s3, user)
        versions = writer.list_object_versions(Bucket=BUCKET, Prefix=f"{user}/")["Versions"]
        assert len(versions) == len(objects)
        for version in versions:
            with pytest.raises(ClientError) as refused:
                writer.delete_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])
            assert refused.value.response["Error"]["Code"] == "AccessDenied"
        batch = writer.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]})
        assert sorted(e["Key"] for e in batch.get("Errors", [])) == sorted(objects) and not batch.get("Deleted")
        first = next(iter(objects))
        writer.put_object(Bucket=BUCKET, Key=first, Body=b"overwritten by the thief")
        for key in objects:
            marker = writer.delete_object(Bucket=BUCKET, Key=key)
            assert marker["DeleteMarker"] is True
        # Gone from every listing, as Velero and barman-cloud would see it...
        assert writer.list_objects_v2(Bucket=BUCKET, Prefix=f"{user}/")["KeyCount"] == 0
        # ...yet every version written before is still there, as written.
        for version in versions:
            kept = writer.get_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])
            assert kept["Body"].read() == objects[version["Key"]]

    # restore.yml -e restore_backups_as_of=<as_of>: a Job per writer runs restore_objects.py
    # (python -c <the file> <bucket> <time> <prefix>) with that writer's Secret as its environment.
    for user, prefix in rewinds:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **secret_env(s3, user)}
        job = subprocess.run([sys.executable, "-c", RESTORE_OBJECTS.read_text(), BUCKET, as_of, prefix],
                             env=env, capture_output=True, text=True, timeout=120, check=False)
        assert job.returncode == 0, job.stderr
        assert f"{BUCKET}: {len(WRITES[user])} object(s) put back" in job.stdout
        reader = client(s3, user)
        for key, body in WRITES[user].items():
            restored = reader.get_object(Bucket=BUCKET, Key=key)
            assert hashlib.sha256(restored["Body"].read()).hexdigest() == hashlib.sha256(body).hexdigest(), key
            # Locked again in its new version.
            assert restored["ObjectLockMode"] == "GOVERNANCE"
        # A second run finds the backups as they were.
        when = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
        assert restore_objects.restore(reader, BUCKET, when, prefix) == []


def test_without_the_lock_the_same_stolen_key_erases_a_backup_for_good(s3):
    """The known-bad case: the bucket versioned only, as before object lock."""
    admin = boto3.client("s3", endpoint_url=s3, aws_access_key_id="platform-root", aws_secret_access_key="x", region_name="us-east-1")
    admin.create_bucket(Bucket="unlocked-backups")
    admin.put_bucket_versioning(Bucket="unlocked-backups", VersioningConfiguration={"Status": "Enabled"})
    writer = client(s3, "velero")
    key, body = next(iter(WRITES["velero"].items()))
    writer.put_object(Bucket="unlocked-backups", Key=key, Body=body)
    next_second()
    as_of = datetime.now(timezone.utc)
    next_second()
    for version in writer.list_object_versions(Bucket="unlocked-backups", Prefix="velero/")["Versions"]:
        writer.delete_object(Bucket="unlocked-backups", Key=version["Key"], VersionId=version["VersionId"])
    assert "Versions" not in writer.list_object_versions(Bucket="unlocked-backups", Prefix="velero/")
    assert restore_objects.restore(writer, "unlocked-backups", as_of, "velero/") == []
    with pytest.raises(ClientError):
        writer.get_object(Bucket="unlocked-backups", Key=key)
