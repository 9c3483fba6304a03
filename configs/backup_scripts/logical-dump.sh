# shellcheck shell=sh disable=SC2154
# (work is set by begin_set, lib-publish.sh, which the renderer puts before this body.)
# usage: logical-dump OUT_DIR   (connection from PGHOST, PGPORT, PGUSER)
set -eu
begin_set "$1"
pg_dumpall --roles-only --file="$work/roles.sql" || fail "roles"
for db in $SOS_DATABASES; do
  pg_dump --format=custom --file="$work/$db.dump" --dbname="$db" || fail "$db"
  pg_restore --list "$work/$db.dump" >/dev/null || fail "$db is not a readable archive"
done
publish
