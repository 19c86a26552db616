"""The MinIO setup job's script (roles/storage/files/minio-setup.sh) run with a stand-in for mc:
buckets, policies and users converge, the backups bucket is made with object lock and its
default retention and encrypted at rest (and a backups bucket made before, without the lock,
fails the job with the way out once the rest has converged), replication to the second site is
added once and never twice, users no longer declared are removed with their policies, and the
remote's secret never reaches the output, also when mc fails.

The stand-in answers as the pinned mc (RELEASE.2025-08-13T08-35-41Z) and MinIO
(RELEASE.2025-04-08T15-41-24Z) do: an object-lock configuration on a bucket made without the
lock is refused with "Object Lock configuration cannot be enabled on existing buckets"
(cmd/bucket-handlers.go PutBucketObjectLockConfigHandler), encryption before the server has a
KMS with "Server side encryption specified but KMS is not configured" (cmd/api-errors.go)."""

from __future__ import annotations

import os
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ROOT

SCRIPT = ROOT / "roles" / "storage" / "files" / "minio-setup.sh"
SECRET = "s3cr3t-of-the-second-site-0123456789abcd"

MC = """#!/bin/sh
echo "mc $*" >> "$MC_LOG"
case "$1 $2" in
  "retention set"|"retention clear")
    for target in "$@"; do :; done
    case " ${MC_UNLOCKED:-} " in *" ${target#platform/} "*)
      echo "mc: <ERROR> Unable to apply bucket lock configuration. Object Lock configuration cannot be enabled on existing buckets." >&2; exit 1 ;;
    esac ;;
  "encrypt set")
    echo x >> "$MC_STATE.kms"
    if [ "$(wc -l < "$MC_STATE.kms")" -le "${MC_KMS_LATE:-0}" ]; then
      echo "mc: <ERROR> Unable to enable auto encryption. Server side encryption specified but KMS is not configured." >&2; exit 1
    fi
    if [ -n "${MC_KMS_BROKEN:-}" ]; then echo "mc: <ERROR> Unable to enable auto encryption. Access Denied." >&2; exit 1; fi ;;
  "replicate ls")
    grep -qx "$3" "$MC_STATE" 2>/dev/null || { echo "replication configuration not set" >&2; exit 1; }
    printf 'Rules:\\nRemote Bucket: https://minio.site-b.example:9000/%s\\n  Rule ID: x\\n' "${3#platform/}" ;;
  "replicate add")
    if [ -n "${MC_FAIL_ADD:-}" ]; then echo "mc: <ERROR> Unable to add remote target $5: connection refused" >&2; exit 1; fi
    echo "$3" >> "$MC_STATE"
    echo "Replication configuration rule applied to $3 successfully." ;;
esac
case "$1 $2 $3" in
  "admin user remove"|"admin policy remove")
    if [ -n "${MC_FAIL_REMOVE:-}" ]; then echo "mc: <ERROR> Unable to remove $2: connection refused" >&2; exit 1; fi
    case " ${MC_GONE:-} " in *" $5 "*) echo "mc: <ERROR> Unable to remove $2. The specified $2 does not exist." >&2; exit 1 ;; esac ;;
esac
exit 0
"""


@pytest.fixture()
def job(tmp_path):
    return setup_job(tmp_path)


def setup_job(tmp_path):
    """A function running the script with the stand-in, in its own directories under tmp_path."""
    config, users, replication, bin_dir, scratch = (tmp_path / d for d in ("config", "users", "replication", "bin", "tmp"))
    for d in (config, users, replication, bin_dir, scratch):
        d.mkdir(parents=True)
    (config / "buckets").write_text("mlflow-artifacts on\nplatform-backups on\n")
    (config / "users").write_text("mlflow platform-mlflow\n")
    for bucket in ("mlflow-artifacts", "platform-backups"):
        (config / f"lifecycle-{bucket}.json").write_text('{"Rules": []}')
    (config / "policy-platform-mlflow.json").write_text("{}")
    (config / "replication").write_text("mlflow-artifacts\nplatform-backups\n")
    (config / "locked").write_text("platform-backups governance 30\n")
    (config / "encrypted").write_text("platform-backups sse-s3\n")
    (users / "mlflow").write_text("mlflow-secret")
    (replication / "endpoint").write_text("https://minio.site-b.example:9000")
    (replication / "access_key").write_text("site-a-replicator")
    (replication / "secret_key").write_text(SECRET)
    mc = bin_dir / "mc"
    mc.write_text(MC)
    mc.chmod(mc.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", MC_LOG=str(tmp_path / "log"), MC_STATE=str(tmp_path / "state"),
               SETUP_CONFIG=str(config), SETUP_USERS=str(users), SETUP_REPLICATION=str(replication), SETUP_WAIT_STEP="0",
               TMPDIR=str(scratch))

    def run(**extra):
        result = subprocess.run(["sh", str(SCRIPT)], env={**env, **extra}, capture_output=True, text=True, timeout=60, check=False)
        calls = (tmp_path / "log").read_text().splitlines()
        (tmp_path / "log").unlink()
        return result, calls

    return run


def test_the_buckets_are_replicated_once_and_the_secret_is_never_shown(job):
    result, calls = job()
    assert result.returncode == 0, result.stderr
    adds = [c for c in calls if c.startswith("mc replicate add")]
    assert adds == [
        f"mc replicate add platform/{b} --remote-bucket https://site-a-replicator:{SECRET}@minio.site-b.example:9000/{b} --priority 1"
        for b in ("mlflow-artifacts", "platform-backups")
    ]
    assert "mc version enable platform/mlflow-artifacts" in calls
    assert SECRET not in result.stdout + result.stderr
    assert result.stdout.strip().endswith("object store converged")
    # A second run finds both rules and adds none (mc refuses a second remote for one endpoint).
    again, calls = job()
    assert again.returncode == 0, again.stderr
    assert not [c for c in calls if c.startswith("mc replicate add")]
    assert "mlflow-artifacts: replicated to minio.site-b.example:9000 already" in again.stdout


def test_a_failed_replication_fails_the_job_with_the_secret_masked(job):
    result, _ = job(MC_FAIL_ADD="1")
    assert result.returncode != 0
    assert "Unable to add remote target" in result.stderr
    assert SECRET not in result.stdout + result.stderr and "***" in result.stderr


def test_runs_at_the_same_time_keep_their_own_errors_and_leave_nothing_behind(tmp_path):
    """Two runs at once, one whose replication fails, with the same scratch directory
    (TMPDIR): each failure still says why. A file both wrote (the script once kept mc's
    output in /tmp/replicate.out) gave a failed run an empty message when the other run
    truncated it first, or the other run's lines, and a part of the secret the mask missed."""
    failing, passing = setup_job(tmp_path / "failing"), setup_job(tmp_path / "passing")
    shared = {"TMPDIR": str(tmp_path / "failing" / "tmp")}
    for _ in range(8):
        with ThreadPoolExecutor(max_workers=2) as pool:
            failed = pool.submit(failing, MC_FAIL_ADD="1", **shared)
            pool.submit(passing, **shared).result()
            result, _ = failed.result()
        assert result.returncode == 1 and "Unable to add remote target" in result.stderr, result
        assert SECRET[-20:] not in result.stdout + result.stderr
        (tmp_path / "passing" / "state").unlink()  # the next passing run adds its rules again
    assert list((tmp_path / "failing" / "tmp").iterdir()) == []


def test_users_no_longer_declared_are_removed_with_their_policies(job, tmp_path):
    (tmp_path / "config" / "revoked").write_text("team-old platform-team-old\nteam-gone platform-team-gone\n")
    result, calls = job(MC_GONE="team-gone platform-team-gone")
    assert result.returncode == 0, result.stderr
    assert "mc admin user remove platform team-old" in calls and "mc admin policy remove platform platform-team-old" in calls
    # The user goes before its policy: its keys stop working first.
    assert calls.index("mc admin user remove platform team-old") < calls.index("mc admin policy remove platform platform-team-old")
    assert "team-old: user removed" in result.stdout and "team-old: policy removed" in result.stdout
    assert "team-gone: user gone already" in result.stdout and "team-gone: policy gone already" in result.stdout
    # Declared users are never removed.
    assert not [c for c in calls if "remove platform mlflow" in c or "remove platform platform-mlflow" in c]


def test_a_removal_that_fails_fails_the_job(job, tmp_path):
    (tmp_path / "config" / "revoked").write_text("team-old platform-team-old\n")
    result, _ = job(MC_FAIL_REMOVE="1")
    assert result.returncode != 0 and "Unable to remove user: connection refused" in result.stderr
    assert "object store converged" not in result.stdout


def test_the_backups_bucket_is_made_with_object_lock_and_encrypted(job):
    result, calls = job()
    assert result.returncode == 0, result.stderr
    # Made with the lock (only a new bucket can have it), then its default retention, before any
    # writer is given a key; the other buckets are made without either.
    made = calls.index("mc mb --ignore-existing --with-lock platform/platform-backups")
    retention = calls.index("mc retention set --default governance 30d platform/platform-backups")
    assert made < retention < calls.index("mc admin user add platform mlflow mlflow-secret")
    assert "mc mb --ignore-existing platform/mlflow-artifacts" in calls
    assert [c for c in calls if c.startswith(("mc retention", "mc encrypt"))] == [
        "mc retention set --default governance 30d platform/platform-backups", "mc encrypt set sse-s3 platform/platform-backups"]
    # Versioned too (object lock works on versions), and its lifecycle imported like every bucket's.
    assert "mc version enable platform/platform-backups" in calls and "mc ilm rule import platform/platform-backups" in calls
    assert "platform-backups: object lock governance, 30 days" in result.stdout
    assert "platform-backups: encrypted at rest (sse-s3)" in result.stdout


def test_a_backups_bucket_made_without_the_lock_fails_the_job_once_the_rest_has_converged(job):
    result, calls = job(MC_UNLOCKED="platform-backups")
    assert result.returncode == 3, result.stderr
    # The exit code the Job's podFailurePolicy ends it on, at once (test_render_backup.py).
    assert "platform-backups: this bucket was made without object lock" in result.stderr
    assert "docs/backup.md" in result.stderr and "storage_backup_retention_days: 0" in result.stderr
    # Users, policies, encryption and replication converged all the same.
    assert "mc admin user add platform mlflow mlflow-secret" in calls
    assert "mc encrypt set sse-s3 platform/platform-backups" in calls
    assert [c for c in calls if c.startswith("mc replicate add")]
    assert "object store converged" not in result.stdout


def test_without_a_retention_the_bucket_gets_no_lock_and_a_locked_one_loses_its_default(job, tmp_path):
    (tmp_path / "config" / "locked").write_text("platform-backups off 0\n")
    result, calls = job(MC_UNLOCKED="platform-backups")
    assert result.returncode == 0, result.stderr
    assert "mc mb --ignore-existing platform/platform-backups" in calls
    assert not [c for c in calls if "--with-lock" in c or c.startswith("mc retention set")]
    # A bucket without the lock has no default retention to clear: mc's refusal is not an error.
    assert "mc retention clear --default platform/platform-backups" in calls
    # A bucket made with the lock has its default retention cleared the same way.
    again, calls = job()
    assert again.returncode == 0 and "mc retention clear --default platform/platform-backups" in calls


def test_encryption_waits_for_minio_to_restart_with_its_key_and_stops_on_any_other_error(job):
    result, calls = job(MC_KMS_LATE="2")
    assert result.returncode == 0, result.stderr
    assert calls.count("mc encrypt set sse-s3 platform/platform-backups") == 3
    failed, _ = job(MC_KMS_BROKEN="1")
    assert failed.returncode == 1
    assert "Access Denied" in failed.stderr and "MINIO_KMS_SECRET_KEY" in failed.stderr
    assert "object store converged" not in failed.stdout
