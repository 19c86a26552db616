"""The restore Job's bucket rewind (roles/backup/files/restore_objects.py) against moto's
versioned S3: objects overwritten or deleted after the backup come back as they were, objects
created after it are hidden, and a second run changes nothing."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import boto3
import pytest

from conftest import load_script

moto = pytest.importorskip("moto")

restore_objects = load_script("roles/backup/files/restore_objects.py")


def test_a_bucket_goes_back_to_the_backup_time():
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="mlflow-artifacts")
        s3.put_bucket_versioning(Bucket="mlflow-artifacts", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket="mlflow-artifacts", Key="1/run/artifacts/model.pkl", Body=b"v1")
        s3.put_object(Bucket="mlflow-artifacts", Key="1/run/artifacts/MLmodel", Body=b"flavors")
        s3.put_object(Bucket="mlflow-artifacts", Key="1/kept.txt", Body=b"same")
        time.sleep(1.1)
        backup_time = datetime.now(timezone.utc)
        time.sleep(1.1)
        # After the backup: one object overwritten, one deleted, one new.
        s3.put_object(Bucket="mlflow-artifacts", Key="1/run/artifacts/model.pkl", Body=b"v2")
        s3.delete_object(Bucket="mlflow-artifacts", Key="1/run/artifacts/MLmodel")
        s3.put_object(Bucket="mlflow-artifacts", Key="2/new.txt", Body=b"later")

        changes = restore_objects.restore(s3, "mlflow-artifacts", backup_time)

        assert sorted(changes) == [
            "removed 2/new.txt (created after " + backup_time.isoformat() + ")",
            *sorted(c for c in changes if c.startswith("restored")),
        ]
        assert len([c for c in changes if c.startswith("restored")]) == 2
        read = lambda key: s3.get_object(Bucket="mlflow-artifacts", Key=key)["Body"].read()  # noqa: E731
        assert read("1/run/artifacts/model.pkl") == b"v1"
        assert read("1/run/artifacts/MLmodel") == b"flavors"
        assert read("1/kept.txt") == b"same"
        with pytest.raises(s3.exceptions.NoSuchKey):
            read("2/new.txt")
        # Nothing was destroyed: the newer version is still in the bucket's history.
        versions = s3.list_object_versions(Bucket="mlflow-artifacts", Prefix="1/run/artifacts/model.pkl")["Versions"]
        assert len(versions) == 3
        # Idempotent: a second run finds the bucket already as it was.
        assert restore_objects.restore(s3, "mlflow-artifacts", backup_time) == []
