# shellcheck shell=sh disable=SC2154
# (work is set by begin_set, lib-publish.sh, which the renderer puts before this body.)
# usage: <kind>-snapshot OUT_DIR: a tar of SOS_SOURCE_DIR, verified by listing it back.
set -eu
begin_set "$1"
tar -C "$SOS_SOURCE_DIR" -cf "$work/$SOS_KIND.tar" . || fail "tar"
tar -tf "$work/$SOS_KIND.tar" >/dev/null || fail "the archive does not read back"
publish
