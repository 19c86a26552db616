#!/bin/sh
# Converges the platform's MinIO tenant on what the storage layer declares:
# buckets (versioning, lifecycle), one policy and one user per service, the
# removal of users no longer declared, and replication of the listed buckets
# to a second MinIO. Every step is
# create-or-update, so the job can run again at any time. The alias "platform"
# comes from MC_HOST_platform; secrets are read from files (the directories
# are the Job's mounts; the tests point them elsewhere).
set -eu
config=${SETUP_CONFIG:-/config}
users=${SETUP_USERS:-/users}
replication=${SETUP_REPLICATION:-/replication}

attempt=0
until mc admin info platform >/dev/null 2>&1; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 60 ]; then
    echo "MinIO did not answer at the tenant's address for 10 minutes" >&2
    exit 1
  fi
  sleep 10
done

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

while read -r user policy; do
  mc admin policy create platform "$policy" "$config/policy-$policy.json"
  mc admin user add platform "$user" "$(cat "$users/$user")"
  mc admin policy attach platform "$policy" --user "$user" 2>/tmp/attach.err \
    || grep -qi "already" /tmp/attach.err \
    || { cat /tmp/attach.err >&2; exit 1; }
done < "$config/users"
# Users the storage layer no longer declares (a team taken out of
# platform_teams, a service user removed): the user, so its keys stop working,
# then its policy. One that is gone already is not an error.
if [ -s "$config/revoked" ]; then
  while read -r user policy; do
    for what in "user remove platform $user" "policy remove platform $policy"; do
      # shellcheck disable=SC2086
      if mc admin $what 2>/tmp/revoke.err; then
        echo "$user: ${what%% *} removed"
      elif grep -qi "not exist\|not found" /tmp/revoke.err; then
        echo "$user: ${what%% *} gone already"
      else
        cat /tmp/revoke.err >&2
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
    elif mc replicate add "platform/$bucket" --remote-bucket "$scheme://$key:$secret@$host/$bucket" --priority 1 >/tmp/replicate.out 2>&1; then
      sed "s|$secret|***|g" /tmp/replicate.out
    else
      sed "s|$secret|***|g" /tmp/replicate.out >&2
      exit 1
    fi
  done < "$config/replication"
fi
echo "object store converged"
