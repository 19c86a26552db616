"""Layer 9's settings (Velero) and the second site's bucket replication (layer 3), judged
before any host or cluster is touched: each problem names the variable and the fix."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

CRON_FIELD = r"(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*"
CRON = re.compile(rf"^{CRON_FIELD}( {CRON_FIELD}){{4}}$|^@(yearly|annually|monthly|weekly|daily|midnight|hourly)$")
GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENDPOINT = re.compile(r"^https?://[^\s/@]+/?$")


def _data(value):
    return json.loads(json.dumps(value))


def backup_problems(settings, users, backups_bucket):
    """Velero's schedule, retention, namespaces and object-store user."""
    s = _data(settings)
    users = _data(users or {})
    if not s.get("backup_enabled", True):
        return []
    found = []
    schedule = str(s.get("backup_schedule", ""))
    if not CRON.match(schedule.strip()):
        found.append(f"backup_schedule: {schedule!r} is not a five-field cron (minute hour day month weekday), such as '0 3 * * *'.")
    ttl = str(s.get("backup_ttl", ""))
    if not GO_DURATION.match(ttl):
        found.append(f"backup_ttl: {ttl!r} is not a duration such as 720h0m0s (hours, minutes, seconds).")
    namespaces = s.get("backup_namespaces")
    if not isinstance(namespaces, list) or not namespaces or not all(isinstance(n, str) and DNS1123_LABEL.match(n) for n in namespaces):
        found.append(f"backup_namespaces: {namespaces!r} must be a non-empty list of namespace names.")
    prefix = str(s.get("backup_prefix", ""))
    if not prefix or prefix.startswith("/") or prefix.endswith("/"):
        found.append(f"backup_prefix: {prefix!r} must be a path inside the bucket without leading or trailing slash, such as velero.")
    velero = users.get("velero")
    namespace = s.get("backup_namespace", "velero")
    if not isinstance(velero, Mapping):
        found.append("platform_object_store_users.velero: missing, so Velero has no keys to write its backups with. Fix: keep the default entry (namespace velero, platform-backups/velero: readwrite).")
    else:
        if velero.get("namespace") != namespace:
            found.append(f"platform_object_store_users.velero.namespace: {velero.get('namespace')!r}, but Velero runs in backup_namespace {namespace!r}. Fix: make them the same.")
        grants = velero.get("buckets") or {}
        scoped = f"{backups_bucket}/{prefix}"
        if grants.get(scoped) != "readwrite" and grants.get(backups_bucket) != "readwrite":
            found.append(f"platform_object_store_users.velero.buckets: Velero writes to {scoped} (platform_buckets.backups and backup_prefix), so it needs {scoped}: readwrite.")
    return found


def replication_problems(settings, buckets, object_store, endpoint, credentials_text):
    """The second site: a MinIO URL without credentials, versioned buckets, known bucket names
    and the remote user's keys in the credentials file (credentials_text: its content or '')."""
    s = _data(settings)
    target = str(s.get("storage_replication_target") or "")
    if not target:
        return []
    found = []
    if object_store != "minio":
        found.append("storage_replication_target: set, but platform_object_store is external; replicate with your S3 service's own tools.")
    if "@" in target:
        found.append("storage_replication_target: the URL holds credentials, which would be logged. Fix: keep only https://host[:port] and put the keys in entry replication of object-store.yml.")
    elif not ENDPOINT.match(target):
        found.append(f"storage_replication_target: {target!r} must be the second MinIO's https://host[:port], without a path.")
    if endpoint and target.rstrip("/") == str(endpoint).rstrip("/"):
        found.append("storage_replication_target: is this platform's own object store; a second copy must be at another site.")
    if s.get("storage_bucket_versioning") is False:
        found.append("storage_replication_target: set, but storage_bucket_versioning is false; MinIO replicates only versioned buckets. Fix: turn versioning on.")
    names = [str(b) for b in buckets]
    for bucket in s.get("storage_replicated_buckets") or []:
        if bucket not in names:
            found.append(f"storage_replicated_buckets: {bucket!r} is not one of the buckets ({', '.join(names)}).")
    try:
        import yaml

        entry = (yaml.safe_load(credentials_text or "") or {}).get("replication") or {}
    except Exception:  # a broken file is the storage layer's to report
        entry = {}
    if not (entry.get("access_key") and entry.get("secret_key")):
        found.append(
            "storage_replication_target: the second site's keys are missing. Fix: add replication: {access_key: ..., secret_key: ...} "
            "(a user of that MinIO allowed to replicate into its buckets) to <platform_credentials_dir>/object-store.yml (mode 0600)."
        )
    return found


MAX_RETENTION_DAYS = 36500  # MinIO's internal/bucket/object/lock maximumRetentionDays
LOCK_MODES = ("governance", "compliance")
DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s)")
RETENTION = re.compile(r"^([1-9][0-9]*)([dwm])$")


def duration_days(text):
    """Days (rounded up) of a Go duration such as 720h0m0s; None when it is not one."""
    text = str(text)
    if not GO_DURATION.match(text):
        return None
    seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit] for n, unit in DURATION_PART.findall(text))
    return -(-int(seconds) // 86400)


def retention_days(text):
    """Days of CloudNativePG's retentionPolicy (30d, 8w, 6m; a month counted as 31 days, so the
    check errs on the safe side); None when it is not one."""
    match = RETENTION.match(str(text))
    return int(match.group(1)) * {"d": 1, "w": 7, "m": 31}[match.group(2)] if match else None


def protection_problems(settings, object_store="minio"):
    """The backups bucket's object lock and encryption against what keeps backups: the lock must
    cover every backup Velero (backup_ttl) and CloudNativePG (tracking_postgres_backup_retention)
    still keep, or a writer could erase the oldest ones they offer for a restore. Their own
    clean-up keeps working at any retention: they delete without a version, which on a locked
    bucket only adds a delete marker. settings: the storage, backup and tracking settings."""
    s = _data(settings)
    found = []
    if object_store != "minio":
        if s.get("storage_external_backups_protected") is None:
            found.append(
                "storage_external_backups_protected: not set, but platform_object_store is external, where the platform can neither lock nor "
                "encrypt the backups bucket (it holds the platform's Secrets). Fix: create it with object lock and a default retention of at "
                "least backup_ttl, default encryption and s3:PutObjectRetention for its writers (docs/backup.md, \"An external object store\"), "
                "then set it to true; or set false to go on without."
            )
        return found
    days = s.get("storage_backup_retention_days", 30)
    mode = s.get("storage_backup_retention_mode", "governance")
    if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= MAX_RETENTION_DAYS:
        found.append(f"storage_backup_retention_days: {days!r} must be a whole number of days from 0 (no object lock) to {MAX_RETENTION_DAYS}.")
        return found
    if mode not in LOCK_MODES:
        import difflib

        near = difflib.get_close_matches(str(mode), LOCK_MODES, n=1)
        found.append(f"storage_backup_retention_mode: {mode!r} is not one of {', '.join(LOCK_MODES)}" + (f" (did you mean '{near[0]}'?)." if near else "."))
    if "kms" in (s.get("storage_rotate_credentials") or []):
        found.append(
            "storage_rotate_credentials: kms is the object store's encryption key, which MinIO's built-in KMS cannot rotate: "
            "the backups and MinIO's own user data encrypted with it could no longer be read. Fix: take kms out of the list."
        )
    if days == 0:
        return found
    if s.get("storage_bucket_versioning") is False:
        found.append(
            f"storage_bucket_versioning: false, but the backups bucket is locked (storage_backup_retention_days: {days}), and object lock "
            "works on versions only. Fix: turn versioning on, or set storage_backup_retention_days: 0."
        )
    ttl = duration_days(s.get("backup_ttl", "720h0m0s"))
    if s.get("backup_enabled", True) and ttl is not None and days < ttl:
        found.append(
            f"storage_backup_retention_days: {days} days is shorter than backup_ttl ({s.get('backup_ttl', '720h0m0s')}, {ttl} days): Velero would keep "
            f"backups whose lock has ended, which a stolen velero key could erase. Fix: set storage_backup_retention_days to at least {ttl}, "
            "or shorten backup_ttl."
        )
    kept = retention_days(s.get("tracking_postgres_backup_retention", "30d"))
    if kept is not None and days < kept:
        found.append(
            f"storage_backup_retention_days: {days} days is shorter than tracking_postgres_backup_retention "
            f"({s.get('tracking_postgres_backup_retention', '30d')}, {kept} days): CloudNativePG would keep base backups and WAL whose lock has "
            f"ended, which a stolen postgres key could erase. Fix: set storage_backup_retention_days to at least {kept}, or shorten "
            "tracking_postgres_backup_retention."
        )
    return found


class FilterModule:
    def filters(self):
        return {
            "backup_problems": backup_problems,
            "backup_replication_problems": replication_problems,
            "backup_protection_problems": protection_problems,
        }
