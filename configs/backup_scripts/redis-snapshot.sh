# shellcheck shell=sh disable=SC2154
# (work is set by begin_set, lib-publish.sh, which the renderer puts before this body.)
# usage: redis-snapshot OUT_DIR
set -eu
begin_set "$1"
cp "$SOS_REDIS_DIR/dump.rdb" "$work/dump.rdb" 2>/dev/null || fail "no dump.rdb in $SOS_REDIS_DIR"
[ "$(head -c 5 "$work/dump.rdb")" = REDIS ] || fail "dump.rdb is not an RDB file"
publish
