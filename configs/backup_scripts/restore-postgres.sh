# shellcheck shell=sh
# usage: restore-postgres TARGET_TIME|latest, while PostgreSQL is stopped (docs/runbook.md).
set -eu
target="$1"
pgdata="${PGDATA:?}"
if [ -f "$pgdata/postmaster.pid" ] && pg_ctl status -D "$pgdata" >/dev/null 2>&1; then
  echo "PostgreSQL is running on $pgdata; stop its container first" >&2
  exit 1
fi
if [ -d "$pgdata" ] && [ -n "$(ls -A "$pgdata")" ]; then
  aside="$pgdata.before-restore-$(date -u +%Y%m%dT%H%M%SZ)"
  mv "$pgdata" "$aside"
  echo "kept the previous data directory as $aside"
fi
mkdir -p "$pgdata"
chmod 700 "$pgdata"
if [ "$target" = latest ]; then
  pgbackrest --config="$SOS_PGBACKREST_CONF" --stanza="$SOS_STANZA" --pg1-path="$pgdata" restore
else
  pgbackrest --config="$SOS_PGBACKREST_CONF" --stanza="$SOS_STANZA" --pg1-path="$pgdata" \
    --type=time --target="$target" --target-action=promote restore
fi
echo "restored into $pgdata; start PostgreSQL and it replays WAL up to the target, then promotes"
