"""Layer 9 (backup) and the restore path as the gitops mode renders them: Velero's values
against the upstream chart's keys and CRDs, its object-store user and Secret, the schedule's
namespaces; the backups bucket made with object lock and encrypted with a KMS key the Tenant
gets from its configuration Secret; the tracking layer's Cluster after a restore (recovery from
the recorded base backup, a new archive); and backup.yml / restore.yml refusing to start without
what they need."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import yaml

from conftest import BOM, documents, rendered_credentials, run, state_dir, tool
from k8s_schemas import load_tree, validate
from test_render_serving_tracking import by_kind, first, skipped_secrets

KUBERNETES = BOM["bom_kubernetes"]["kubeadm"]
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


def velero_values(tree_docs):
    app = first(tree_docs, "Application", "backup-velero")
    source = app["spec"]["source"]
    assert (source["chart"], source["targetRevision"]) == ("velero", BOM["bom_charts"]["velero"]["version"])
    return source["helm"]["valuesObject"]


def test_velero_writes_to_the_backups_bucket_with_its_own_user(rendered):
    inventory, tree, tree_docs = rendered
    values = velero_values(tree_docs)
    location = values["configuration"]["backupStorageLocation"]
    assert location == [{
        "name": "default", "provider": "aws", "bucket": "platform-backups", "prefix": "velero", "default": True,
        "config": {"region": "us-east-1", "s3ForcePathStyle": "true", "s3Url": "http://minio.minio.svc.cluster.local"},
    }]
    # Keys from the velero user's Secret as AWS_* variables (chart 12.1.0: credentials.extraSecretRef
    # is the container's envFrom), never a credentials file in values.
    assert values["credentials"] == {"useSecret": False, "extraSecretRef": "object-store-velero"}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"} <= skipped_secrets(tree)[("velero", "object-store-velero")]
    setup = by_kind(tree_docs)[("ConfigMap", "minio", "minio-setup")]["data"]
    policy = yaml.safe_load(setup["policy-platform-velero.json"])
    # The bucket's listing, and the objects under Velero's prefix only (not the database's backups).
    assert {r for st in policy["Statement"] for r in st["Resource"]} == {"arn:aws:s3:::platform-backups", "arn:aws:s3:::platform-backups/velero/*"}
    # No snapshots and no node agent: nothing privileged; the plugin is the one the BOM pins.
    assert values["snapshotsEnabled"] is False and values["deployNodeAgent"] is False
    assert values["initContainers"][0]["image"] in BOM["bom_chart_images"]["velero"]
    assert values["image"]["tag"] == "v" + BOM["bom_charts"]["velero"]["app_version"]
    assert values["metrics"]["serviceMonitor"] == {"enabled": True, "autodetect": False}


def test_the_backups_bucket_is_locked_and_its_writers_may_upload_but_not_unlock(rendered):
    _, _, tree_docs = rendered
    setup = by_kind(tree_docs)[("ConfigMap", "minio", "minio-setup")]["data"]
    # Made with object lock, each version locked 30 days (storage_backup_retention_days), and
    # encrypted at rest; no other bucket is either.
    assert setup["locked"] == "platform-backups governance 30\n"
    assert setup["encrypted"] == "platform-backups sse-s3\n"
    # Old versions go once their lock has ended, not before.
    rules = json.loads(setup["lifecycle-platform-backups.json"])["Rules"]
    assert {"ID": "expire-noncurrent-versions", "Status": "Enabled", "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30}} in rules
    for user, prefix in (("velero", "velero"), ("postgres", "postgres")):
        policy = json.loads(setup[f"policy-platform-{user}.json"])
        retention = {r for st in policy["Statement"] if "s3:PutObjectRetention" in st["Action"] for r in st["Resource"]}
        assert retention == {f"arn:aws:s3:::platform-backups/{prefix}/*"}, user
    for name, text in setup.items():
        if name.startswith("policy-"):
            actions = {a for st in json.loads(text)["Statement"] for a in st["Action"]}
            assert not actions & {"s3:BypassGovernanceRetention", "s3:PutBucketObjectLockConfiguration", "s3:PutLifecycleConfiguration"}, name


def test_the_tenant_gets_its_kms_key_from_its_configuration_secret_and_the_key_is_nowhere_else(rendered):
    inventory, tree, tree_docs = rendered
    tenant = by_kind(tree_docs)[("Tenant", "minio", "platform")]["spec"]
    assert tenant["configuration"] == {"name": "minio-config"}
    assert not [e for e in tenant.get("env", []) if e["name"].startswith("MINIO_KMS")]
    assert skipped_secrets(tree)[("minio", "minio-config")] == {"config.env"}
    # The key the storage layer generated into the credentials store: 32 random bytes.
    credentials = yaml.safe_load((rendered_credentials(tree, inventory) / "object-store.yml").read_text())
    key = credentials["kms"]["key"]
    assert len(base64.b64decode(key, validate=True)) == 32
    # The Secret's config.env is exactly the root user and that key (its digest rolls the pods,
    # since MinIO reads it only at start), and neither is in the tree or the run's output.
    config_env = (f'export MINIO_ROOT_USER="{credentials["root"]["access_key"]}"\n'
                  f'export MINIO_ROOT_PASSWORD="{credentials["root"]["secret_key"]}"\n'
                  f'export MINIO_KMS_SECRET_KEY="ml-platform:{key}"')
    digest = tenant["pools"][0]["annotations"]["platform.ml/configuration-digest"]
    assert digest == hashlib.sha256(config_env.encode()).hexdigest()
    assert not [p for p in tree.rglob("*") if p.is_file() and key in p.read_text()]
    assert key not in (tree.parent / f"{tree.name}.out").read_text()


def test_the_setup_job_ends_at_once_on_a_backups_bucket_made_without_the_lock(rendered):
    _, _, tree_docs = rendered
    job = next(doc for _, doc in documents(tree_docs) if doc["kind"] == "Job" and doc["metadata"]["name"].startswith("minio-setup-"))
    # Exit code 3 is the script's (tests/test_minio_setup.py): no retry can add the lock.
    assert job["spec"]["podFailurePolicy"]["rules"] == [
        {"action": "FailJob", "onExitCodes": {"containerName": "setup", "operator": "In", "values": [3]}}]
    # (A pod failure policy needs restartPolicy Never; test_render.py validates every document.)
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_velero_runs_restricted(rendered):
    _, _, tree_docs = rendered
    values = velero_values(tree_docs)
    assert values["podSecurityContext"]["runAsNonRoot"] is True and isinstance(values["podSecurityContext"]["runAsUser"], int)
    assert values["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert values["containerSecurityContext"] == RESTRICTED_CONTAINER
    assert values["initContainers"][0]["securityContext"] == RESTRICTED_CONTAINER
    namespace = by_kind(tree_docs)[("Namespace", None, "velero")]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_daily_schedule_holds_the_platform_and_every_team(rendered):
    inventory, _, tree_docs = rendered
    daily = velero_values(tree_docs)["schedules"]["daily"]
    teams = [] if inventory == "lab" else ["team-vision", "team-fraud"]
    assert daily["template"]["includedNamespaces"] == ["ml-serving", "ml-tracking", "ml-training", "argo", *teams]
    # The chart copies the entry into a velero.io/v1 Schedule: it must be one the CRD accepts.
    schedule = {"apiVersion": "velero.io/v1", "kind": "Schedule", "metadata": {"name": "velero-daily", "namespace": "velero"},
                "spec": {k: v for k, v in daily.items() if k in ("schedule", "template", "useOwnerReferencesInBackup", "paused")}}
    assert validate(schedule, KUBERNETES) == []
    broken = {**schedule, "spec": {**schedule["spec"], "template": {**daily["template"], "includeNamespaces": ["x"]}}}
    assert validate(broken, KUBERNETES), "the Velero CRD rejects a misspelt field"


def test_the_backup_alerts_watch_the_daily_schedule(rendered):
    _, _, tree_docs = rendered
    rule = by_kind(tree_docs)[("PrometheusRule", "velero", "backup")]
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert all('schedule="velero-daily"' in e for e in exprs)


def test_without_backups_there_is_no_velero(tmp_path):
    from conftest import render_gitops

    tree = tmp_path / "tree"
    result = render_gitops("lab", tree, "backup", "-e", "backup_enabled=false")
    assert result.returncode == 0, result.stdout[-2000:]
    assert not [path.name for path in tree.rglob("*") if path.is_file() and "velero" in path.read_text()]


@pytest.fixture()
def restored_project(project):
    """A checkout whose production inventory went through restore.yml: the record of the
    recovery in the inventory's state directory."""
    state = state_dir(project, "production")
    state.mkdir(mode=0o700, parents=True)
    (state / "postgres-restore.yml").write_text(yaml.safe_dump(
        {"backup_id": "20261202T031500", "source_server_name": "mlflow-db", "server_name": "mlflow-db-r20261202031500", "restored_from": "platform-20261202031500"}))
    return project


def test_after_a_restore_the_database_is_the_recovered_one_with_its_own_archive(restored_project, tmp_path):
    tree = tmp_path / "tree"
    result = run([tool("ansible-playbook"), "site.yml", "-i", "inventories/production", "--tags", "tracking",
                  "-e", "platform_delivery=gitops", "-e", f"platform_gitops_dir={tree}", "-e", "platform_gitops_repo_url=https://git.example.internal/t.git",
                  "-e", "platform_gitops_secrets=skip"], cwd=restored_project)
    assert result.returncode == 0, result.stdout[-3000:]
    docs = load_tree(tree)
    cluster = next(d for _, d in documents(docs) if d["kind"] == "Cluster")
    recovery = cluster["spec"]["bootstrap"]["recovery"]
    assert recovery["recoveryTarget"] == {"backupID": "20261202T031500"}
    assert recovery["secret"] == {"name": "mlflow-db-app"} and recovery["source"] == "origin"
    assert "initdb" not in cluster["spec"]["bootstrap"]
    origin = cluster["spec"]["externalClusters"][0]
    assert origin["name"] == "origin" and origin["barmanObjectStore"]["serverName"] == "mlflow-db"
    archive = cluster["spec"]["backup"]["barmanObjectStore"]
    assert archive["serverName"] == "mlflow-db-r20261202031500"
    assert archive["destinationPath"] == origin["barmanObjectStore"]["destinationPath"]
    assert validate(cluster, KUBERNETES) == []


def test_without_a_restore_the_database_archives_under_its_own_name(rendered):
    _, _, tree_docs = rendered
    cluster = first(tree_docs, "Cluster", "mlflow-db")
    assert "initdb" in cluster["spec"]["bootstrap"] and "externalClusters" not in cluster["spec"]
    assert cluster["spec"]["backup"]["barmanObjectStore"]["serverName"] == "mlflow-db"


@pytest.mark.parametrize("playbook, args, message", [
    ("playbooks/backup.yml", [], "Backups run against the live platform and need its admin kubeconfig"),
    ("playbooks/restore.yml", [], "Pass -e restore_name=<a backup's name>"),
    ("playbooks/restore.yml", ["-e", "restore_name=platform-20990101000000"], "Pass -e restore_name=<a backup's name>"),
])
def test_backup_and_restore_refuse_to_start_without_what_they_need(playbook, args, message, project):
    result = run([tool("ansible-playbook"), playbook, "-i", "inventories/lab", *args], cwd=project)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-2000:]
