"""Unit tests of the object-store filters (plugins/filter/storage_object_store.py)."""

from __future__ import annotations

import json

import storage_object_store as store

BUCKETS = [{"name": n, "versioning": True} for n in ("kserve-models", "mlflow-artifacts", "training-datasets")]
USERS = {
    "mlflow": {"namespace": "ml-tracking", "buckets": {"mlflow-artifacts": "readwrite"}},
    "kserve": {"namespace": "ml-serving", "buckets": {"kserve-models": "read", "mlflow-artifacts": "read"}},
}


def test_a_read_only_service_gets_no_write_action():
    doc = store.policy(USERS["kserve"]["buckets"])
    actions = [a for statement in doc["Statement"] for a in statement["Action"]]
    assert "s3:GetObject" in actions and "s3:ListBucket" in actions
    assert not [a for a in actions if a.startswith(("s3:Put", "s3:Delete", "s3:Abort"))]
    resources = [r for statement in doc["Statement"] for r in statement["Resource"]]
    assert sorted(resources) == ["arn:aws:s3:::kserve-models", "arn:aws:s3:::kserve-models/*", "arn:aws:s3:::mlflow-artifacts", "arn:aws:s3:::mlflow-artifacts/*"]


def test_readwrite_is_limited_to_the_named_buckets():
    doc = store.policies(USERS)["platform-mlflow"]
    assert doc["Version"] == "2012-10-17"
    resources = {r for statement in doc["Statement"] for r in statement["Resource"]}
    assert resources == {"arn:aws:s3:::mlflow-artifacts", "arn:aws:s3:::mlflow-artifacts/*"}
    actions = {a for statement in doc["Statement"] for a in statement["Action"]}
    assert {"s3:PutObject", "s3:DeleteObject", "s3:ListBucketMultipartUploads"} <= actions
    assert not [a for a in actions if a.startswith("s3:*") or a.startswith("admin:")]


def test_mixed_access_gives_separate_statements():
    doc = store.policy({"a-bucket": "read", "b-bucket": "readwrite"})
    by_resource = {tuple(s["Resource"]): s["Action"] for s in doc["Statement"]}
    assert "s3:PutObject" not in by_resource[("arn:aws:s3:::a-bucket/*",)]
    assert "s3:PutObject" in by_resource[("arn:aws:s3:::b-bucket/*",)]


def test_lifecycle_expires_scratch_and_old_versions():
    rules = store.lifecycle({"name": "training-datasets"}, "scratch/", 7, 30)["Rules"]
    assert rules[0] == {"ID": "expire-scratch", "Status": "Enabled", "Filter": {"Prefix": "scratch/"}, "Expiration": {"Days": 7}}
    assert rules[1]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert store.lifecycle({"name": "b", "scratch_expire_days": 0, "noncurrent_expire_days": 0}) == {"Rules": []}


def test_setup_files_list_every_bucket_and_user():
    files = store.setup_files(USERS, BUCKETS)
    assert files["buckets"] == "kserve-models on\nmlflow-artifacts on\ntraining-datasets on\n"
    assert files["users"] == "kserve platform-kserve\nmlflow platform-mlflow\n"
    assert json.loads(files["policy-platform-kserve.json"]) == store.policy(USERS["kserve"]["buckets"])
    assert set(files) == {"buckets", "users", "policy-platform-kserve.json", "policy-platform-mlflow.json"} | {f"lifecycle-{b['name']}.json" for b in BUCKETS}


def test_problems_name_the_variable_and_the_fix():
    users = {
        "mlflow": {"namespace": "ml-tracking", "buckets": {"mlflow-artifact": "readwrite"}},
        "Kserve": {"namespace": "ml_serving", "buckets": {"kserve-models": "write"}},
        "argo": {"namespace": "ml-training", "buckets": {}},
    }
    found = store.problems(users, BUCKETS + [{"name": "Bad_Bucket"}])
    assert any("platform_buckets: 'Bad_Bucket'" in p for p in found)
    assert any("platform_object_store_users.mlflow.buckets: bucket 'mlflow-artifact' is not one of platform_buckets" in p for p in found)
    assert any("platform_object_store_users.Kserve: the name must be" in p for p in found)
    assert any("platform_object_store_users.Kserve.namespace: 'ml_serving'" in p for p in found)
    assert any("platform_object_store_users.Kserve.buckets.kserve-models: 'write' is not read or readwrite" in p for p in found)
    assert any("platform_object_store_users.argo.buckets: must map at least one bucket" in p for p in found)
    assert store.problems(USERS, BUCKETS) == []


def test_credential_entries_generate_only_for_minio():
    minio = store.credential_entries(USERS, "minio")
    assert minio["mlflow"] == {"access_key": "mlflow", "secret_key": None}
    assert minio["root"] == {"access_key": "platform-root", "secret_key": None}
    external = store.credential_entries(USERS, "external")
    assert external == {"mlflow": {"access_key": None, "secret_key": None}, "kserve": {"access_key": None, "secret_key": None}}


def test_each_service_secret_lands_in_its_namespace_with_kserve_annotations():
    credentials = {u: {"access_key": u, "secret_key": f"{u}-secret"} for u in USERS}
    secrets = store.service_secrets(USERS, credentials, "http://minio.minio.svc.cluster.local", "us-east-1")
    by_name = {s["metadata"]["name"]: s for s in secrets}
    assert set(by_name) == {"object-store-mlflow", "object-store-kserve"}
    kserve = by_name["object-store-kserve"]
    assert kserve["metadata"]["namespace"] == "ml-serving"
    assert kserve["stringData"]["AWS_ACCESS_KEY_ID"] == "kserve"
    assert kserve["stringData"]["AWS_SECRET_ACCESS_KEY"] == "kserve-secret"
    assert kserve["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"] == "minio.minio.svc.cluster.local"
    assert kserve["metadata"]["annotations"]["serving.kserve.io/s3-usehttps"] == "0"
    assert store.secret_keys(credentials, USERS) == {"kserve": "kserve-secret", "mlflow": "mlflow-secret"}


def test_revoked_users_are_the_service_users_the_declaration_no_longer_has():
    # What the storage layer's credentials task returns as kept: entries it did not ask for.
    assert store.revoked_users(["replication", "team-old"], {"mlflow": {}}) == ["team-old"]
    assert store.revoked_users(["replication"], {"mlflow": {}}) == []
    assert store.revoked_users([], {"mlflow": {}}) == []


def test_a_prefix_grant_gives_the_bucket_listing_and_the_objects_under_the_prefix_only():
    document = store.policy({"platform-backups/postgres": "readwrite", "training-datasets": "read"})
    resources = {r for st in document["Statement"] for r in st["Resource"]}
    assert resources == {"arn:aws:s3:::platform-backups", "arn:aws:s3:::platform-backups/postgres/*",
                         "arn:aws:s3:::training-datasets", "arn:aws:s3:::training-datasets/*"}
    writes = [st for st in document["Statement"] if "s3:PutObject" in st["Action"]]
    assert [st["Resource"] for st in writes] == [["arn:aws:s3:::platform-backups/postgres/*"]]


def test_two_services_that_may_write_the_same_objects_are_refused():
    buckets = [{"name": "platform-backups"}, {"name": "mlflow-artifacts"}]
    users = {
        "postgres": {"namespace": "ml-tracking", "buckets": {"platform-backups/postgres": "readwrite"}},
        "velero": {"namespace": "velero", "buckets": {"platform-backups/velero": "readwrite"}},
        "mlflow": {"namespace": "ml-tracking", "buckets": {"mlflow-artifacts": "readwrite"}},
        "training": {"namespace": "ml-training", "buckets": {"mlflow-artifacts": "read"}},
    }
    assert store.problems(users, buckets) == []
    users["training"]["buckets"]["mlflow-artifacts"] = "readwrite"
    users["velero"]["buckets"] = {"platform-backups": "readwrite"}
    found = store.problems(users, buckets)
    assert len(found) == 2, found
    assert found[0].startswith("platform_object_store_users: mlflow and training may both write mlflow-artifacts")
    assert found[1].startswith("platform_object_store_users: postgres and velero may both write platform-backups/postgres")
    # Sibling prefixes do not overlap; a prefix and one below it do.
    assert not store._overlap(("b", "postgres"), ("b", "postgres2"))
    assert store._overlap(("b", "postgres"), ("b", "postgres/wal"))


def test_the_backups_bucket_is_locked_encrypted_and_keeps_old_versions_until_the_lock_ends():
    buckets = [{"name": "mlflow-artifacts", "versioning": True}, {"name": "platform-backups", "versioning": True}]
    protected = store.backups_bucket(buckets, "platform-backups", 30, "governance", 7)
    assert protected[0] == buckets[0]
    assert protected[1] == {"name": "platform-backups", "versioning": True, "lock_days": 30, "lock_mode": "governance",
                            "encryption": "sse-s3", "noncurrent_expire_days": 30}
    # Old versions kept for ever elsewhere stay kept; a longer expiry elsewhere applies here too.
    assert store.backups_bucket(buckets, "platform-backups", 30, "governance", 0)[1]["noncurrent_expire_days"] == 0
    assert store.backups_bucket(buckets, "platform-backups", 30, "governance", 90)[1]["noncurrent_expire_days"] == 90
    files = store.setup_files(USERS, protected, noncurrent_days=7)
    assert files["locked"] == "platform-backups governance 30\n" and files["encrypted"] == "platform-backups sse-s3\n"
    rules = json.loads(files["lifecycle-platform-backups.json"])["Rules"]
    assert {"ID": "expire-noncurrent-versions", "Status": "Enabled", "Filter": {"Prefix": ""}, "NoncurrentVersionExpiration": {"NoncurrentDays": 30}} in rules
    assert json.loads(files["lifecycle-mlflow-artifacts.json"])["Rules"][1]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 7}
    # Without a retention the bucket is still encrypted, and the job clears any default retention.
    unlocked = store.setup_files(USERS, store.backups_bucket(buckets, "platform-backups", 0, "governance", 7))
    assert unlocked["locked"] == "platform-backups off 0\n" and unlocked["encrypted"] == "platform-backups sse-s3\n"
    assert "locked" not in store.setup_files(USERS, buckets) and "encrypted" not in store.setup_files(USERS, buckets)


def test_writers_of_a_locked_bucket_may_upload_into_it_but_never_lift_a_lock():
    users = {
        "velero": {"namespace": "velero", "buckets": {"platform-backups/velero": "readwrite"}},
        "kserve": {"namespace": "ml-serving", "buckets": {"platform-backups/velero": "read", "kserve-models": "read"}},
        "mlflow": {"namespace": "ml-tracking", "buckets": {"mlflow-artifacts": "readwrite"}},
    }
    documents = store.policies(users, ["platform-backups"])
    # MinIO refuses an upload into a bucket with a default retention without PutObjectRetention.
    retention = [st for st in documents["platform-velero"]["Statement"] if st["Action"] == ["s3:PutObjectRetention"]]
    assert retention == [{"Effect": "Allow", "Action": ["s3:PutObjectRetention"], "Resource": ["arn:aws:s3:::platform-backups/velero/*"]}]
    for name, document in documents.items():
        actions = {a for st in document["Statement"] for a in st["Action"]}
        assert not actions & {"s3:BypassGovernanceRetention", "s3:PutBucketObjectLockConfiguration", "s3:PutLifecycleConfiguration",
                              "s3:PutEncryptionConfiguration", "s3:DeleteBucket"}, name
        assert ("s3:PutObjectRetention" in actions) == (name == "platform-velero"), name
    assert documents == store.policies(users, ["platform-backups"])
    assert not [a for st in store.policies(users)["platform-velero"]["Statement"] for a in st["Action"] if "Retention" in a]


def test_the_kms_key_is_never_taken_for_a_user_to_revoke():
    assert store.revoked_users(["kms", "replication", "root", "team-old"], {"mlflow": {}}) == ["team-old"]
