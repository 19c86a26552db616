"""Unit tests of the backups bucket's protection checks (plugins/filter/backup_layer.py,
protection_problems): the lock must cover every backup Velero and CloudNativePG still keep."""

from __future__ import annotations

import backup_layer as layer

DEFAULTS = {"storage_backup_retention_days": 30, "storage_backup_retention_mode": "governance", "storage_bucket_versioning": True,
            "storage_rotate_credentials": [], "storage_external_backups_protected": None,
            "backup_enabled": True, "backup_ttl": "720h0m0s", "tracking_postgres_backup_retention": "30d"}


def problems(store="minio", **changes):
    return layer.protection_problems({**DEFAULTS, **changes}, store)


def test_the_defaults_are_consistent():
    assert problems() == []
    assert problems(storage_backup_retention_days=0) == []
    assert problems(storage_backup_retention_days=90, storage_backup_retention_mode="compliance") == []


def test_durations_are_read_as_velero_and_cloudnativepg_read_them():
    assert [layer.duration_days(d) for d in ("720h0m0s", "72h", "24h0m1s", "90m", "30d")] == [30, 3, 2, 1, None]
    assert [layer.retention_days(r) for r in ("30d", "8w", "6m", "30", "0d")] == [30, 56, 186, None, None]


def test_a_lock_shorter_than_what_the_tools_keep_is_refused_naming_both_variables():
    (ttl,) = problems(storage_backup_retention_days=7, tracking_postgres_backup_retention="7d")
    assert ttl.startswith("storage_backup_retention_days: 7 days is shorter than backup_ttl (720h0m0s, 30 days)")
    assert "at least 30" in ttl
    (database,) = problems(tracking_postgres_backup_retention="8w")
    assert "tracking_postgres_backup_retention (8w, 56 days)" in database and "at least 56" in database
    # Without Velero its TTL does not count.
    assert problems(storage_backup_retention_days=7, tracking_postgres_backup_retention="7d", backup_enabled=False) == []


def test_other_bad_settings_are_named():
    assert problems(storage_backup_retention_days=-1)[0].startswith("storage_backup_retention_days: -1 must be a whole number")
    assert problems(storage_backup_retention_days=36501)[0].startswith("storage_backup_retention_days: 36501 must be")
    assert problems(storage_backup_retention_mode="goverance") == [
        "storage_backup_retention_mode: 'goverance' is not one of governance, compliance (did you mean 'governance'?)."]
    (versioning,) = problems(storage_bucket_versioning=False)
    assert versioning.startswith("storage_bucket_versioning: false, but the backups bucket is locked")
    (rotation,) = problems(storage_rotate_credentials=["mlflow", "kms"])
    assert rotation.startswith("storage_rotate_credentials: kms is the object store's encryption key")


def test_an_external_store_needs_the_operator_to_say_whether_its_backups_bucket_is_protected():
    (unset,) = problems("external")
    assert unset.startswith("storage_external_backups_protected: not set, but platform_object_store is external")
    assert problems("external", storage_external_backups_protected=True) == []
    assert problems("external", storage_external_backups_protected=False) == []
    # The MinIO settings do not apply to a store the platform does not run.
    assert problems("external", storage_external_backups_protected=True, storage_backup_retention_days=1) == []
