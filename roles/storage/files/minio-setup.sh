#!/bin/sh
# Converges the platform's MinIO tenant on what the storage layer declares:
# buckets (versioning, lifecycle; the backups bucket with object lock and
# encrypted at rest), one policy and one user per service, the removal of
# users no longer declared, and replication of the listed buckets to a second
# MinIO. Every step is create-or-update, so the job can run again at any time.
# The alias "platform" comes from MC_HOST_platform; secrets are read from files
# (the directories are the Job's mounts; the tests point them elsewhere).
# Exit code 3: a bucket that must be locked exists without object lock, which
# MinIO cannot add to an existing bucket; everything else has converged.
set -eu
# mc's error output goes to this run's own directory: a fixed path under /tmp
# is one file for every run at once, and a run that truncates it while another
# reads it leaves that one failing with nothing to say (the tests run the
# script concurrently). One left by a killed run of the same process id (a
# restarted container has the same) is stale: it is replaced.
scratch=${TMPDIR:-/tmp}/minio-setup.$$
rm -rf "$scratch"
mkdir -m 0700 "$scratch"
trap 'rm -rf "$scratch"' EXIT
config=${SETUP_CONFIG:-/config}
users=${SETUP_USERS:-/users}
replication=${SETUP_REPLICATION:-/replication}
wait_step=${SETUP_WAIT_STEP:-10}
unlocked=""

attempt=0
until mc admin info platform >/dev/null 2>&1; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 60 ]; then
    echo "MinIO did not answer at the tenant's address for 10 minutes" >&2
    exit 1
  fi
  sleep "$wait_step"
done

# Object lock (the backups bucket): only a bucket made with it can have it.
# Its default retention gives every new version a lock no writer can lift or
# shorten (governance: only root, with the bypass header; compliance: nobody).
if [ -s "$config/locked" ]; then
  while read -r bucket mode days; do
    if [ "$mode" = off ]; then
      mc mb --ignore-existing "platform/$bucket"
      # A bucket made with the lock keeps it; new versions get no retention.
      if ! mc retention clear --default "platform/$bucket" 2>"$scratch"/lock.err; then
        grep -q "cannot be enabled on existing buckets" "$scratch"/lock.err || { cat "$scratch"/lock.err >&2; exit 1; }
      fi
      continue
    fi
    mc mb --ignore-existing --with-lock "platform/$bucket"
    if mc retention set --default "$mode" "${days}d" "platform/$bucket" 2>"$scratch"/lock.err; then
      echo "$bucket: object lock $mode, $days days"
    elif grep -q "cannot be enabled on existing buckets" "$scratch"/lock.err; then
      unlocked="$unlocked $bucket"
    else
      cat "$scratch"/lock.err >&2
      exit 1
    fi
  done < "$config/locked"
fi

while read -r bucket versioning; do
  mc mb --ignore-existing "platform/$bucket"
  if [ "$versioning" = on ]; then
    mc version enable "platform/$bucket"
  else
    mc version suspend "platform/$bucket"
  fi
  # import replaces the bucket's whole lifecycle, so re-runs add no duplicates.
  mc ilm rule import "platform/$bucket" < "$config/lifecycle-$bucket.json"
done < "$config/buckets"

# Encryption at rest: new objects of these buckets are encrypted with the
# tenant's KMS key (SSE-S3 uses the key of MinIO's KMS). MinIO answers "KMS is
# not configured" until its servers have restarted with the key (the Tenant's
# configuration digest rolls them), so that one error is waited out.
if [ -s "$config/encrypted" ]; then
  while read -r bucket kind; do
    attempt=0
    until mc encrypt set "$kind" "platform/$bucket" >/dev/null 2>"$scratch"/encrypt.err; do
      attempt=$((attempt + 1))
      if ! grep -q "KMS is not configured" "$scratch"/encrypt.err || [ "$attempt" -ge 60 ]; then
        cat "$scratch"/encrypt.err >&2
        echo "$bucket: encryption could not be turned on; MinIO needs MINIO_KMS_SECRET_KEY from its configuration Secret (docs/storage.md)" >&2
        exit 1
      fi
      sleep "$wait_step"
    done
    echo "$bucket: encrypted at rest ($kind)"
  done < "$config/encrypted"
fi

while read -r user policy; do
  mc admin policy create platform "$policy" "$config/policy-$policy.json"
  mc admin user add platform "$user" "$(cat "$users/$user")"
  # Its output kept in the shell, not in a file every run shares: an attachment
  # made before is not an error.
  if ! attached=$(mc admin policy attach platform "$policy" --user "$user" 2>&1); then
    printf '%s\n' "$attached" | grep -qi "already" || { printf '%s\n' "$attached" >&2; exit 1; }
  elif [ -n "$attached" ]; then
    printf '%s\n' "$attached"
  fi
done < "$config/users"
# Users the storage layer no longer declares (a team taken out of
# platform_teams, a service user removed): the user, so its keys stop working,
# then its policy. One that is gone already is not an error.
if [ -s "$config/revoked" ]; then
  while read -r user policy; do
    for what in "user remove platform $user" "policy remove platform $policy"; do
      # shellcheck disable=SC2086
      if mc admin $what 2>"$scratch"/revoke.err; then
        echo "$user: ${what%% *} removed"
      elif grep -qi "not exist\|not found" "$scratch"/revoke.err; then
        echo "$user: ${what%% *} gone already"
      else
        cat "$scratch"/revoke.err >&2
        exit 1
      fi
    done
  done < "$config/revoked"
fi
# Server-side bucket replication to the second site (storage_replication_target):
# a MinIO whose buckets of the same names are versioned too. The remote's keys
# go in the target URL, so mc's output is shown with the secret masked.
if [ -s "$config/replication" ]; then
  target=$(cat "$replication/endpoint")
  scheme=${target%%://*}
  host=${target#*://}
  host=${host%/}
  key=$(cat "$replication/access_key")
  secret=$(cat "$replication/secret_key")
  while read -r bucket; do
    if mc replicate ls "platform/$bucket" 2>/dev/null | grep -q "Remote Bucket: .*$host"; then
      echo "$bucket: replicated to $host already"
    elif mc replicate add "platform/$bucket" --remote-bucket "$scheme://$key:$secret@$host/$bucket" --priority 1 >"$scratch"/replicate.out 2>&1; then
      sed "s|$secret|***|g" "$scratch"/replicate.out
    else
      sed "s|$secret|***|g" "$scratch"/replicate.out >&2
      exit 1
    fi
  done < "$config/replication"
fi
for bucket in $unlocked; do
  cat >&2 <<EOF
$bucket: this bucket was made without object lock, and MinIO cannot turn object lock on
for an existing bucket ("Object Lock configuration cannot be enabled on existing buckets"),
so the users that write its backups can still delete them. Everything else has converged.
Move the backups into a bucket made with the lock (docs/backup.md, "Locking an existing
backups bucket"), or set storage_backup_retention_days: 0 to go on without object lock.
EOF
done
[ -z "$unlocked" ] || exit 3
echo "object store converged"
