#!/bin/sh
# A logical dump of the host's database into RDS (placement cluster), run as a one-off of the
# bootstrap task (RDS's master user, TLS): docs/runbook.md, "Switching a stack to the cluster".
# DUMP_URL (a presigned GET of <db>.dump from the backups bucket), DB and ROLE come from the
# run's environment. Extensions are left as the bootstrap made them (the master owns them, and
# the role restoring may not drop them); everything else is replaced and owned by ROLE. The
# first error stops it.
set -eu
dump="${SOS_DUMP_FILE:-/tmp/restore.dump}"
wget -qO "$dump" "$DUMP_URL"
pg_restore --list "$dump" | grep -v -E ' EXTENSION - | COMMENT - EXTENSION ' > "$dump.list"
pg_restore --use-list="$dump.list" --clean --if-exists --no-owner --role="$ROLE" --exit-on-error \
  --dbname="$DB" "$dump"
rm -f "$dump" "$dump.list"
echo "restored $DB as $ROLE"
