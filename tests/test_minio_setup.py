"""The MinIO setup job's script (roles/storage/files/minio-setup.sh) run with a stand-in for mc:
buckets, policies and users converge, replication to the second site is added once and never
twice, users no longer declared are removed with their policies, and the remote's secret never
reaches the output, also when mc fails."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from conftest import ROOT

SCRIPT = ROOT / "roles" / "storage" / "files" / "minio-setup.sh"
SECRET = "s3cr3t-of-the-second-site-0123456789abcd"

MC = """#!/bin/sh
echo "mc $*" >> "$MC_LOG"
case "$1 $2" in
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
    config, users, replication, bin_dir = (tmp_path / d for d in ("config", "users", "replication", "bin"))
    for d in (config, users, replication, bin_dir):
        d.mkdir()
    (config / "buckets").write_text("mlflow-artifacts on\nplatform-backups on\n")
    (config / "users").write_text("mlflow platform-mlflow\n")
    for bucket in ("mlflow-artifacts", "platform-backups"):
        (config / f"lifecycle-{bucket}.json").write_text('{"Rules": []}')
    (config / "policy-platform-mlflow.json").write_text("{}")
    (config / "replication").write_text("mlflow-artifacts\nplatform-backups\n")
    (users / "mlflow").write_text("mlflow-secret")
    (replication / "endpoint").write_text("https://minio.site-b.example:9000")
    (replication / "access_key").write_text("site-a-replicator")
    (replication / "secret_key").write_text(SECRET)
    mc = bin_dir / "mc"
    mc.write_text(MC)
    mc.chmod(mc.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", MC_LOG=str(tmp_path / "log"), MC_STATE=str(tmp_path / "state"),
               SETUP_CONFIG=str(config), SETUP_USERS=str(users), SETUP_REPLICATION=str(replication))

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
