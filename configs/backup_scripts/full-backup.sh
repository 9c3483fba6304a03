# shellcheck shell=sh
# Full backup of the PostgreSQL cluster with pgBackRest; updates the backup metric file.
set -u
# Creates the stanza on the first run; a no-op (or a clear error below) afterwards.
pgbackrest --config="$SOS_PGBACKREST_CONF" --stanza="$SOS_STANZA" stanza-create >/dev/null 2>&1 || true
pgbackrest --config="$SOS_PGBACKREST_CONF" --stanza="$SOS_STANZA" --type=full backup
status=$?
if [ "$status" -eq 0 ]; then
  size=$(pgbackrest --config="$SOS_PGBACKREST_CONF" --stanza="$SOS_STANZA" --output=json info \
    | sed -n 's/.*"repository":{"delta":\([0-9]*\),.*/\1/p' | tail -n 1)
  record_ok "${size:-0}"
  exit 0
fi
record_failure
echo "backup failed with status $status" >&2
exit "$status"
