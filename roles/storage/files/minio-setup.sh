#!/bin/sh
# Converges the platform's MinIO tenant on what the storage layer declares:
# buckets (versioning, lifecycle), one policy and one user per service. Every
# step is create-or-update, so the job can run again at any time. The alias
# "platform" comes from MC_HOST_platform; secrets are read from files.
set -eu
config=/config
users=/users

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
echo "object store converged"
