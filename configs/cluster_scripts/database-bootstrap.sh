#!/bin/sh
# The database bootstrap of the cluster placement, run as RDS's master user (a one-off task on
# each new task definition): the host's init SQL in its managed form (SOS_INIT_SQL). The roles'
# passwords arrive as SCRAM verifiers (SOS_*_VERIFIER, from Secrets Manager) and are written
# where the SQL reads them from, readable by this user only.
set -eu
umask 077
dir="${SOS_SECRETS_DIR:-/tmp/sos-secrets}"
mkdir -p "$dir"
printf '%s' "$SOS_APP_VERIFIER" > "$dir/app-password"
printf '%s' "$SOS_N8N_VERIFIER" > "$dir/n8n-password"
printf '%s' "$SOS_MONITORING_VERIFIER" > "$dir/monitoring-password"
export SOS_SECRETS_DIR="$dir"
printf '%s' "$SOS_INIT_SQL" | psql --no-psqlrc -v ON_ERROR_STOP=1 --dbname postgres -f -
