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
# PostgreSQL takes an exit of restore_command from 1 to 125 as "no such WAL", the end of the
# archive: recovery would end there and promote, early and silently, on any S3 or network error.
# pgBackRest exits 1 only for a segment that is not in the repository; any other failure becomes
# 126, which stops the recovery instead. The container restarts and recovery goes on from its
# last restartpoint (tests/test_backup_drill.py cuts S3 during replay).
# Segments are fetched ahead, process-max at a time, into a spool beside the data directory on
# the same volume (the queue is 128 MiB; /tmp is smaller): a faster replay, which is most of a
# whole-host restore (docs/benchmarks.md). The spool starts empty with each restore, and holds
# pgBackRest's logs of the fetch (main-archive-get*.log): a failure's detail is there.
spool="$(dirname "$pgdata")/pgbackrest-spool"
rm -rf "$spool"
mkdir -p "$spool"
get="pgbackrest --config=$SOS_PGBACKREST_CONF --stanza=$SOS_STANZA --pg1-path=$pgdata --archive-async"
get="$get --spool-path=$spool --log-path=$spool --log-level-file=info archive-get %f \"%p\""
guard="; s=\$?; [ \"\$s\" -le 1 ] || s=126; exit \"\$s\""
if [ "$target" = latest ]; then
  pgbackrest --config="$SOS_PGBACKREST_CONF" --stanza="$SOS_STANZA" --pg1-path="$pgdata" \
    --recovery-option="restore_command=$get$guard" restore
else
  pgbackrest --config="$SOS_PGBACKREST_CONF" --stanza="$SOS_STANZA" --pg1-path="$pgdata" \
    --recovery-option="restore_command=$get$guard" --type=time --target="$target" --target-action=promote restore
fi
echo "restored into $pgdata; start PostgreSQL and it replays WAL up to the target, then promotes"
